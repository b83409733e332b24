package fakeengines

import (
	"context"
	"strings"
	"testing"

	"parley/agent"
	"parley/stt"
	"parley/tts"
)

func TestEngines(t *testing.T) {
	ctx := context.Background()
	s, err := Recognizer{}.NewStream(ctx, stt.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(make([]int16, 320)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Final(ctx); err != nil || got != Transcript {
		t.Fatalf("Final: %q, %v", got, err)
	}
	s2, _ := Recognizer{Text: "hello"}.NewStream(ctx, stt.StreamConfig{})
	if got, _ := s2.Final(ctx); got != "hello" {
		t.Fatalf("Final with Text: %q", got)
	}

	var samples, chunks int
	err = Synth{}.Synthesize(ctx, tts.Request{Text: "Parley is a gateway. "}, func(pcm []int16) error {
		samples += len(pcm)
		chunks++
		return nil
	})
	if err != nil || samples != 21*SamplesPerChar || chunks != 11 {
		t.Fatalf("Synthesize: %d samples in %d chunks, %v", samples, chunks, err)
	}

	var reply strings.Builder
	u, err := Agent{}.Respond(ctx, &agent.Request{}, func(d string) error { reply.WriteString(d); return nil })
	if err != nil || reply.String() != strings.Join(Reply, "") || u.OutputTokens == 0 {
		t.Fatalf("Respond: %q %+v %v", reply.String(), u, err)
	}
}
