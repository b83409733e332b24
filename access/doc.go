// Package access holds Parley's access-control primitives, independent of
// HTTP and storage: password hashing (argon2id), the role table (who may do
// what in a tenant), and request rate limiting (token buckets per key and
// per client IP). The gateway applies them at its edge.
package access
