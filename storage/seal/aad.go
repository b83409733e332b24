package seal

import "encoding/binary"

// The additional authenticated data of a sealed value names the row it
// belongs to, so a sealed value copied into another row (another tenant,
// conversation, turn or agent) does not open there. Each kind has its own
// domain, and every field is length-prefixed (uvarint), so no two
// different (kind, fields) encode to the same bytes.

// TurnAAD binds a sealed transcript text to its turn.
func TurnAAD(tenantID, conversationID, itemID string) []byte {
	return aad("parley turn v1", tenantID, conversationID, itemID)
}

// AudioAAD binds a turn's sealed audio to its turn.
func AudioAAD(tenantID, conversationID, itemID string) []byte {
	return aad("parley audio v1", tenantID, conversationID, itemID)
}

// AgentAAD binds an agent's sealed settings to the agent.
func AgentAAD(tenantID, agentID string) []byte {
	return aad("parley agent v1", tenantID, agentID)
}

// SessionAAD binds an ephemeral key's sealed session settings (which may
// carry per-user instructions) to the key.
func SessionAAD(tenantID, ephemeralKeyID string) []byte {
	return aad("parley ephemeral session v1", tenantID, ephemeralKeyID)
}

// IdempotencyAAD binds a stored idempotent response to its key.
func IdempotencyAAD(tenantID, idempotencyKey string) []byte {
	return aad("parley idempotency v1", tenantID, idempotencyKey)
}

// aad encodes domain and fields, each length-prefixed.
func aad(domain string, fields ...string) []byte {
	n := binary.MaxVarintLen64 + len(domain)
	for _, f := range fields {
		n += binary.MaxVarintLen64 + len(f)
	}
	b := make([]byte, 0, n)
	b = appendField(b, domain)
	for _, f := range fields {
		b = appendField(b, f)
	}
	return b
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
