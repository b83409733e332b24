package pocketsphinx

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"parley/media"
	"parley/stt"
)

func TestBuildARPA(t *testing.T) {
	arpa := buildARPA([]string{"How long are transcripts kept? Transcripts are kept 90 days.", "What is Parley"})
	lines := strings.Split(arpa, "\n")
	if lines[0] != `\data\` || !strings.HasSuffix(strings.TrimSpace(arpa), `\end\`) {
		t.Fatalf("not ARPA:\n%s", arpa)
	}
	var n1, n2 int
	section := ""
	counts := map[string]int{}
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "ngram 1="):
			n1, _ = strconv.Atoi(strings.TrimPrefix(l, "ngram 1="))
		case strings.HasPrefix(l, "ngram 2="):
			n2, _ = strconv.Atoi(strings.TrimPrefix(l, "ngram 2="))
		case l == `\1-grams:` || l == `\2-grams:`:
			section = l
		case l == "" || strings.HasPrefix(l, `\`):
		default:
			f := strings.Fields(l)
			p, err := strconv.ParseFloat(f[0], 64)
			if err != nil || p > 0 {
				t.Fatalf("bad probability in %q", l)
			}
			counts[section]++
		}
	}
	if counts[`\1-grams:`] != n1 || counts[`\2-grams:`] != n2 || n1 == 0 || n2 == 0 {
		t.Fatalf("declared %d/%d, found %v", n1, n2, counts)
	}
	for _, want := range []string{" parley ", " transcripts kept\n", "<s> how\n"} {
		if !strings.Contains(arpa, want) {
			t.Fatalf("model lacks %q", want)
		}
	}
	if domainName([]string{"a", "b"}) == domainName([]string{"ab"}) {
		t.Fatal("corpus names collide")
	}
}

// A language model of the agent's documents lets the recognizer hear the
// domain's words ("Parley" is "our league" to the generic model).
func TestDomainLanguageModel(t *testing.T) {
	f, err := os.Open("../../testdata/audio/what_is_parley.wav")
	if err != nil {
		t.Fatal(err)
	}
	pcm24, rate, err := media.DecodeWAV(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := media.NewResampler(rate, 16000)
	pcm := rs.Flush(rs.Process(nil, pcm24))
	r, err := New(Config{MaxDecoders: 1})
	if err != nil {
		t.Skipf("pocketsphinx model unavailable: %v", err)
	}
	defer r.Close()
	corpus := []string{"Parley is a self-hosted gateway for AI conversational agents.", "What is Parley used for?"}
	recognize := func(corpus []string) string {
		s, err := r.NewStream(context.Background(), stt.StreamConfig{Corpus: corpus})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := 0; i < len(pcm); i += 320 {
			if err := s.Write(pcm[i:min(i+320, len(pcm))]); err != nil {
				t.Fatal(err)
			}
		}
		text, err := s.Final(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	if got := recognize(corpus); !strings.Contains(got, "parley") {
		t.Fatalf("with the domain model: %q", got)
	}
	// The same decoder switches back to the generic model, and reuses the
	// loaded domain model the next time.
	_ = recognize(nil)
	if got := recognize(corpus); !strings.Contains(got, "parley") {
		t.Fatalf("domain model again: %q", got)
	}
	if st := r.Stats(); st.Created != 1 {
		t.Fatalf("decoders created %d", st.Created)
	}
}

// TestPrepare: Prepare initializes a decoder and loads a corpus's domain
// model ahead of time, so the first stream for that corpus starts at once;
// a stream asked for while a Prepare runs waits for that decoder rather
// than initialize another (which would double the cold start).
func TestPrepare(t *testing.T) {
	r, err := New(Config{MaxDecoders: 2})
	if err != nil {
		t.Skipf("pocketsphinx model unavailable: %v", err)
	}
	defer r.Close()
	corpus := []string{"Parley is a self-hosted gateway for AI conversational agents.", "What is Parley used for?"}
	ctx := context.Background()

	// A stream asked for during a Prepare gets the prepared decoder.
	done := make(chan error, 1)
	go func() { done <- r.Prepare(ctx, stt.StreamConfig{Corpus: corpus}) }()
	for {
		r.mu.Lock()
		p := r.preparing
		r.mu.Unlock()
		if p > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Prepare ended before it was seen running: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	s, err := r.NewStream(ctx, stt.StreamConfig{Corpus: corpus})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.Close()
	if st := r.Stats(); st.Created != 1 {
		t.Fatalf("decoders created %d, want 1 (the stream should wait for the prepared decoder)", st.Created)
	}

	// Prepared: a stream starts without loading anything.
	if err := r.Prepare(ctx, stt.StreamConfig{Corpus: corpus}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err = r.NewStream(ctx, stt.StreamConfig{Corpus: corpus})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("NewStream after Prepare took %v", d)
	}
	if st := r.Stats(); st.Created != 1 || st.Idle != 1 {
		t.Errorf("after Prepare: %+v", st)
	}
	if err := r.Prepare(ctx, stt.StreamConfig{Language: "fr"}); stt.Code(err, "") != stt.CodeUnsupportedLanguage {
		t.Errorf("Prepare for another language: %v", err)
	}
}
