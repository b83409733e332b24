package main

import "testing"

func TestRunOnFixtures(t *testing.T) {
	if testing.Short() {
		t.Skip("benchmarks the fixtures")
	}
	if err := run("../../testdata/audio", "", false); err != nil {
		t.Fatal(err)
	}
}

func TestNormalizeAndFixtures(t *testing.T) {
	if got := normalize("What is Parley?"); got != "what is parley " {
		t.Fatalf("normalize: %q", got)
	}
	fs, err := loadFixtures("../../testdata/audio")
	if err != nil || len(fs) < 6 {
		t.Fatalf("fixtures %v %v", fs, err)
	}
	for _, f := range fs {
		if f.text == "" || f.name == "" {
			t.Fatalf("fixture %+v", f)
		}
	}
}

func TestVoiceTurns(t *testing.T) {
	if testing.Short() {
		t.Skip("streams audio in real time")
	}
	if err := voiceTurns("../../testdata/audio", 2, 1); err != nil {
		t.Fatal(err)
	}
}
