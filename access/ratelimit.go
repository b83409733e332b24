package access

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter rate-limits requests per key (an API key id, a client IP, a
// tenant): a token bucket each (golang.org/x/time/rate), refilled at Rate
// per second up to Burst. Memory is bounded: buckets that have refilled
// completely are forgotten (a new bucket starts full, so nothing is lost),
// and past MaxKeys the least recently used are dropped. Safe for
// concurrent use; the map is sharded so concurrent requests rarely
// contend.
type Limiter struct {
	limit  rate.Limit
	burst  int
	refill time.Duration // time for an empty bucket to fill
	perMax int
	now    func() time.Time
	seed   maphash.Seed
	shards [limiterShards]limiterShard
}

const limiterShards = 16

type limiterShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// NewLimiter returns a limiter of perSecond requests per second with
// bursts of burst, remembering at most maxKeys keys (0: 100000).
func NewLimiter(perSecond float64, burst, maxKeys int) *Limiter {
	if maxKeys <= 0 {
		maxKeys = 100000
	}
	if burst < 1 {
		burst = 1
	}
	l := &Limiter{limit: rate.Limit(perSecond), burst: burst, now: time.Now, seed: maphash.MakeSeed()}
	l.perMax = max(1, maxKeys/limiterShards)
	if perSecond > 0 {
		l.refill = time.Duration(float64(burst) / perSecond * float64(time.Second))
	} else {
		l.refill = time.Duration(math.MaxInt64)
	}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l
}

// Allow takes one request from key's bucket. When the bucket is empty it
// returns false and how long until a request would be allowed.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	now := l.now()
	sh := &l.shards[maphash.String(l.seed, key)%limiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[key]
	if b == nil {
		if len(sh.buckets) >= l.perMax {
			l.evict(sh, now)
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		sh.buckets[key] = b
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	if l.limit <= 0 {
		return false, time.Hour
	}
	missing := 1 - b.lim.TokensAt(now) // AllowN, unlike ReserveN, does not allocate
	return false, time.Duration(missing / float64(l.limit) * float64(time.Second))
}

// evict forgets the shard's full buckets; if none is full, the least
// recently used one.
func (l *Limiter) evict(sh *limiterShard, now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, b := range sh.buckets {
		if now.Sub(b.last) >= l.refill {
			delete(sh.buckets, k)
			continue
		}
		if oldest == "" || b.last.Before(oldestAt) {
			oldest, oldestAt = k, b.last
		}
	}
	if len(sh.buckets) >= l.perMax && oldest != "" {
		delete(sh.buckets, oldest)
	}
}

// Len returns how many keys the limiter remembers.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
