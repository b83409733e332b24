package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/recording"
	"parley/replay"
)

// TestReplaySessions replays the committed sessions (testdata/sessions:
// text, a spoken question, an interruption, long silences) against a real
// parleyd with the offline engines, and their expectations hold.
func TestReplaySessions(t *testing.T) {
	paths, _ := filepath.Glob("../../testdata/sessions/*.jsonl")
	if len(paths) < 4 {
		t.Fatalf("%d recordings in testdata/sessions, want the 4 committed ones", len(paths))
	}
	var recs []*recording.Recording
	for _, p := range paths {
		rec, err := recording.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+filepath.Join(t.TempDir(), "p.db"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Each recording once, all at once, at real-time pacing.
	rep := (&replay.Load{Recordings: recs, Concurrency: len(recs),
		Session: replay.Options{URL: "http://" + r.m.Addr.String(), Key: testAPIKey, Timeout: 30 * time.Second}}).Run(ctx)
	var out strings.Builder
	_ = rep.WriteText(&out)
	t.Logf("replay report:\n%s", out.String())
	if rep.Sessions != len(recs) || rep.Failed != 0 {
		for _, res := range rep.Results {
			for _, f := range res.Failures {
				t.Errorf("%s: %s: %s", filepath.Base(res.Recording), f.Kind, f.Message)
			}
		}
		t.Fatalf("%d sessions, %d failed", rep.Sessions, rep.Failed)
	}
	st := rep.Stats()
	for _, m := range []string{replay.MConnect, replay.MTranscriptFinal, replay.MReplyFirstToken, replay.MTurnToAudio} {
		if st[m].Count == 0 {
			t.Errorf("%s was never measured", m)
		}
	}
}

// TestReplayWebRTC replays the spoken question as a WebRTC call (Opus on
// the microphone track, events on the data channel) against a real
// parleyd: the expectations hold and the answer's audio is timed from the
// track.
func TestReplayWebRTC(t *testing.T) {
	rec, err := recording.ReadFile("../../testdata/sessions/voice_question.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+filepath.Join(t.TempDir(), "p.db"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := replay.Play(ctx, rec, replay.Options{URL: "http://" + r.m.Addr.String(), Key: testAPIKey,
		Transport: replay.TransportWebRTC, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failures {
		t.Errorf("%s: %s", f.Kind, f.Message)
	}
	if len(res.Turns) == 0 {
		t.Fatalf("no answer")
	}
	tu := res.Turns[0]
	t.Logf("webrtc: connect %v, transcript %q, reply %q, times %v", res.Connect, tu.Heard, clipText(tu.Reply, 80), tu.Times)
	if tu.Times[replay.MTurnToAudio] <= 0 || !tu.Spoken {
		t.Errorf("the answer's audio was not timed from the track: %+v", tu)
	}
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
