package gateway

import (
	"crypto/rand"
	"strconv"
	"time"

	"parley/internal/timeid"
)

const idAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// randomID returns n random lowercase alphanumeric characters.
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// idGen makes the ids of one session's items, responses and events: a
// per-session stem (time-ordered, then random: internal/timeid) plus a
// counter, so ids are unique without a random read per id, and a
// session's conversation id sorts by its start.
type idGen struct {
	stem string
	n    uint64
}

func newIDGen(now time.Time) idGen { return idGen{stem: timeid.New(now)} }

func (g *idGen) next(prefix string) string {
	g.n++
	return prefix + g.stem + strconv.FormatUint(g.n, 36)
}
