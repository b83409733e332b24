// Command voicebench measures Parley's listening path on the spoken
// fixtures: CPU per listening stream for Opus decode + turn detection (VAD
// included) as a ratio to libopus decode alone, measured in the same run;
// how many streams one core holds in real time; and the offline
// recognizer's word error rate on the fixtures. `make bench` runs it after
// the gateway benchmark.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"parley/agent/knowledge"
	"parley/media"
	"parley/stt"
	"parley/stt/pocketsphinx"
)

func main() {
	dir := flag.String("fixtures", "testdata/audio", "directory of the spoken fixtures (fixtures.tsv, NAME.wav, NAME.opus)")
	kdir := flag.String("knowledge", "configs/knowledge/assistant", "knowledge directory whose text adapts the recognizer's language model (as parleyd does for the agent); empty: the generic model only")
	wer := flag.Bool("wer", true, "measure the pocketsphinx word error rate")
	sessions := flag.Int("sessions", 100, "concurrent voice sessions for the voice-turn latency (0 skips it)")
	turns := flag.Int("turns", 2, "spoken turns per voice session")
	flag.Parse()
	if *sessions > 0 {
		if err := voiceTurns(*dir, *sessions, *turns); err != nil {
			fmt.Fprintln(os.Stderr, "voicebench:", err)
			os.Exit(1)
		}
	}
	if err := run(*dir, *kdir, *wer); err != nil {
		fmt.Fprintln(os.Stderr, "voicebench:", err)
		os.Exit(1)
	}
}

type fixture struct{ name, text string }

func loadFixtures(dir string) ([]fixture, error) {
	b, err := os.ReadFile(filepath.Join(dir, "fixtures.tsv"))
	if err != nil {
		return nil, err
	}
	var fs []fixture
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(line, "\t")
		if i == 0 || len(f) < 5 || f[4] == "" {
			continue
		}
		fs = append(fs, fixture{f[0], f[4]})
	}
	return fs, nil
}

// packets reads an Ogg Opus fixture's packets.
func packets(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := media.NewOggOpusReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var ps [][]byte
	for {
		p, err := r.Next()
		if err != nil {
			break
		}
		ps = append(ps, append([]byte(nil), p...))
	}
	return ps, nil
}

func run(dir, kdir string, withWER bool) error {
	fs, err := loadFixtures(dir)
	if err != nil {
		return err
	}
	var all [][]byte
	for _, f := range fs {
		ps, err := packets(filepath.Join(dir, f.name+".opus"))
		if err != nil {
			return err
		}
		all = append(all, ps...)
	}
	audioPerPass := time.Duration(len(all)) * 20 * time.Millisecond

	// Floor: libopus decode alone, straight to 16 kHz.
	decodeOnly := testing.Benchmark(func(b *testing.B) {
		dec, _ := media.NewOpusDecoder(16000)
		pcm := make([]int16, 0, 5760)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			pcm, _ = dec.Decode(all[i%len(all)], pcm[:0])
		}
	})
	// The listening path: decode + turn detection with its VAD + reading
	// the utterance audio out, as the gateway does per frame.
	listening := testing.Benchmark(func(b *testing.B) {
		dec, _ := media.NewOpusDecoder(16000)
		td, _ := media.NewTurnDetector(media.TurnDefaultConfig())
		pcm := make([]int16, 0, 5760)
		utt := make([]int16, 16000)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			pcm, _ = dec.Decode(all[i%len(all)], pcm[:0])
			for j := 0; j+160 <= len(pcm); j += 160 {
				td.Process(pcm[j : j+160])
				if td.UtteranceOpen() {
					_, _ = td.ReadUtterance(utt)
				}
			}
		}
	})
	perFrame := func(r testing.BenchmarkResult) float64 { return float64(r.NsPerOp()) / 1000 }
	ratio := float64(listening.NsPerOp()) / float64(decodeOnly.NsPerOp())
	streams := 20e6 / float64(listening.NsPerOp()) // 20 ms of audio per op
	fmt.Printf("Listening path per 20 ms Opus packet (%d packets of the %d fixtures, %.1f s of audio)\n", len(all), len(fs), audioPerPass.Seconds())
	fmt.Printf("  libopus decode alone (16 kHz)          %7.2f µs   %d allocs/op\n", perFrame(decodeOnly), decodeOnly.AllocsPerOp())
	fmt.Printf("  decode + turn detection (VAD) + read   %7.2f µs   %d allocs/op\n", perFrame(listening), listening.AllocsPerOp())
	fmt.Printf("  ratio to decode alone                  %7.2f     (target <= 1.5: %s)\n", ratio, metOr(ratio <= 1.5))
	fmt.Printf("  listening streams one core holds in real time: %.0f\n\n", streams)

	if !withWER {
		return nil
	}
	rec, err := pocketsphinx.New(pocketsphinx.Config{MaxDecoders: 1})
	if err != nil {
		return err
	}
	defer rec.Close()
	for _, corpus := range [][]string{nil, knowledgeCorpus(kdir)} {
		if err := measureWER(rec, dir, fs, corpus, kdir); err != nil {
			return err
		}
	}
	return nil
}

func knowledgeCorpus(kdir string) []string {
	if kdir == "" {
		return nil
	}
	ix, err := knowledge.Load(kdir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "voicebench:", err)
		return nil
	}
	return ix.Texts()
}

func measureWER(rec *pocketsphinx.Recognizer, dir string, fs []fixture, corpus []string, kdir string) error {
	var edits, words int
	var cpu time.Duration
	var audio time.Duration
	type row struct{ name, ref, hyp string }
	var rows []row
	for _, f := range fs {
		pcm, err := wav16k(filepath.Join(dir, f.name+".wav"))
		if err != nil {
			return err
		}
		start := time.Now()
		s, err := rec.NewStream(context.Background(), stt.StreamConfig{Corpus: corpus})
		if err != nil {
			return err
		}
		for i := 0; i < len(pcm); i += 320 {
			if err := s.Write(pcm[i:min(i+320, len(pcm))]); err != nil {
				return err
			}
		}
		hyp, err := s.Final(context.Background())
		s.Close()
		if err != nil {
			return err
		}
		cpu += time.Since(start)
		audio += time.Duration(len(pcm)) * time.Second / 16000
		ref := strings.Fields(normalize(f.text))
		edits += stt.WordEdits(ref, strings.Fields(normalize(hyp)))
		words += len(ref)
		rows = append(rows, row{f.name, f.text, hyp})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	if corpus == nil {
		fmt.Printf("Offline recognizer (pocketsphinx, Debian en-us model) on the fixtures\n")
	} else {
		fmt.Printf("Offline recognizer (pocketsphinx, Debian en-us acoustic model, bigram language model of %s) on the fixtures\n", kdir)
	}
	for _, r := range rows {
		fmt.Printf("  %-18s %-40q -> %q\n", r.name, r.ref, r.hyp)
	}
	fmt.Printf("  word error rate %.1f%% (%d edits / %d words); real-time factor %.2f (wall time / audio time, one decoder)\n",
		100*float64(edits)/float64(words), edits, words, cpu.Seconds()/audio.Seconds())
	fmt.Println()
	return nil
}

func metOr(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

func normalize(s string) string {
	s = strings.ToLower(s)
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == ' ' || r == '\'' {
			return r
		}
		return ' '
	}, s)
}

func wav16k(path string) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pcm, rate, err := media.DecodeWAV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rs, err := media.NewResampler(rate, 16000)
	if err != nil {
		return nil, err
	}
	out := rs.Process(nil, pcm)
	return rs.Flush(out), nil
}
