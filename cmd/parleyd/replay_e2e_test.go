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
