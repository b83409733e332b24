package replay

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Percentiles reported for each metric.
var Percentiles = []float64{50, 90, 99}

// Stat is one metric's summary (microseconds; Count 0 when unseen).
type Stat struct {
	Count int64 `json:"count"`
	P50   int64 `json:"p50_us"`
	P90   int64 `json:"p90_us"`
	P99   int64 `json:"p99_us"`
	Max   int64 `json:"max_us"`
}

// Stats summarises every metric.
func (r *Report) Stats() map[string]Stat {
	out := map[string]Stat{}
	for _, m := range Metrics {
		h := r.Hist[m]
		if h == nil || h.TotalCount() == 0 {
			out[m] = Stat{}
			continue
		}
		out[m] = Stat{Count: h.TotalCount(), P50: h.ValueAtPercentile(50), P90: h.ValueAtPercentile(90),
			P99: h.ValueAtPercentile(99), Max: h.Max()}
	}
	return out
}

func ms(us int64) string { return strconv.FormatFloat(float64(us)/1000, 'f', 1, 64) }

// WriteText writes the human summary.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d sessions in %v (%d failed), at most %d at once\n\n", r.Sessions, r.Elapsed.Round(time.Millisecond), r.Failed, r.Peak)
	fmt.Fprintf(&b, "%-18s %8s %9s %9s %9s %9s\n", "metric (ms)", "count", "p50", "p90", "p99", "max")
	stats := r.Stats()
	for _, m := range Metrics {
		s := stats[m]
		if s.Count == 0 {
			fmt.Fprintf(&b, "%-18s %8d %9s %9s %9s %9s\n", m, 0, "-", "-", "-", "-")
			continue
		}
		fmt.Fprintf(&b, "%-18s %8d %9s %9s %9s %9s\n", m, s.Count, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max))
	}
	if len(r.Errors) > 0 {
		b.WriteString("\nerrors by kind:\n")
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			fmt.Fprintf(&b, "  %-12s %d\n", k, r.Errors[k])
			for _, s := range r.Samples[k] {
				fmt.Fprintf(&b, "    %s\n", s)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the summary as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Started    time.Time           `json:"started"`
		ElapsedMS  int64               `json:"elapsed_ms"`
		Sessions   int                 `json:"sessions"`
		Failed     int                 `json:"failed"`
		Peak       int                 `json:"peak_concurrency"`
		Metrics    map[string]Stat     `json:"metrics"`
		Errors     map[string]int      `json:"errors"`
		ErrSamples map[string][]string `json:"error_samples"`
	}{r.Started, r.Elapsed.Milliseconds(), r.Sessions, r.Failed, r.Peak, r.Stats(), r.Errors, r.Samples})
}

// WriteCSV writes one row per answer: the session, its recording, the
// answer's index and status, and each metric in milliseconds (empty when
// not seen); connection time is on each session's rows.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := append([]string{"session", "recording", "answer", "status", "spoken"}, Metrics...)
	head = append(head, "failures")
	if err := cw.Write(head); err != nil {
		return err
	}
	for i, res := range r.Results {
		fails := make([]string, len(res.Failures))
		for j, f := range res.Failures {
			fails[j] = f.Kind + ": " + f.Message
		}
		row := func(t *Turn) []string {
			out := []string{strconv.Itoa(i + 1), res.Recording, "", "", ""}
			if t != nil {
				out[2], out[3], out[4] = strconv.Itoa(t.Index+1), t.Status, strconv.FormatBool(t.Spoken)
			}
			for _, m := range Metrics {
				switch {
				case m == MConnect && res.Connect > 0:
					out = append(out, ms(res.Connect.Microseconds()))
				case t != nil && t.Times[m] > 0:
					out = append(out, ms(t.Times[m].Microseconds()))
				default:
					out = append(out, "")
				}
			}
			return append(out, strings.Join(fails, "; "))
		}
		if len(res.Turns) == 0 {
			if err := cw.Write(row(nil)); err != nil {
				return err
			}
		}
		for _, t := range res.Turns {
			if err := cw.Write(row(t)); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// SLO is a threshold a run must meet: a percentile (or max) of a metric
// under a duration, or the share of failed sessions under a percentage.
type SLO struct {
	Text   string
	Stat   string // "p50", "p90", "p99", "max" or "errors"
	Metric string
	Limit  time.Duration
	Share  float64 // errors: the largest allowed failed share, 0-1
}

// ParseSLO parses "p99(turn_to_audio)<1500ms", "max(connect)<2s" or
// "errors<1%".
func ParseSLO(s string) (SLO, error) {
	text := strings.TrimSpace(s)
	lhs, rhs, ok := strings.Cut(strings.ReplaceAll(text, " ", ""), "<")
	if !ok {
		return SLO{}, fmt.Errorf("SLO %q: want STAT(METRIC)<DURATION (e.g. p99(turn_to_audio)<1500ms) or errors<N%%", s)
	}
	if lhs == "errors" {
		pct, ok := strings.CutSuffix(rhs, "%")
		v, err := strconv.ParseFloat(pct, 64)
		if !ok || err != nil || v < 0 || v > 100 {
			return SLO{}, fmt.Errorf("SLO %q: errors take a percentage, like errors<1%%", s)
		}
		return SLO{Text: text, Stat: "errors", Share: v / 100}, nil
	}
	stat, rest, ok := strings.Cut(lhs, "(")
	metric, ok2 := strings.CutSuffix(rest, ")")
	if !ok || !ok2 {
		return SLO{}, fmt.Errorf("SLO %q: want STAT(METRIC)<DURATION", s)
	}
	if !slices.Contains([]string{"p50", "p90", "p99", "max"}, stat) {
		return SLO{}, fmt.Errorf("SLO %q: %q is not p50, p90, p99 or max", s, stat)
	}
	if !slices.Contains(Metrics, metric) {
		return SLO{}, fmt.Errorf("SLO %q: %q is not a metric (%s)", s, metric, strings.Join(Metrics, ", "))
	}
	d, err := time.ParseDuration(rhs)
	if err != nil || d <= 0 {
		return SLO{}, fmt.Errorf("SLO %q: %q is not a duration like 1500ms", s, rhs)
	}
	return SLO{Text: text, Stat: stat, Metric: metric, Limit: d}, nil
}

// Check reports how the run failed slo ("" when it met it). A metric with
// no samples fails: an SLO about it cannot be shown to hold.
func (r *Report) Check(slo SLO) string {
	if slo.Stat == "errors" {
		if r.Sessions == 0 {
			return slo.Text + ": no sessions ran"
		}
		share := float64(r.Failed) / float64(r.Sessions)
		if share >= slo.Share && !(slo.Share == 0 && r.Failed == 0) {
			return fmt.Sprintf("%s: %d of %d sessions failed (%.2f%%)", slo.Text, r.Failed, r.Sessions, share*100)
		}
		return ""
	}
	s := r.Stats()[slo.Metric]
	if s.Count == 0 {
		return slo.Text + ": no " + slo.Metric + " was measured"
	}
	v := map[string]int64{"p50": s.P50, "p90": s.P90, "p99": s.P99, "max": s.Max}[slo.Stat]
	if time.Duration(v)*time.Microsecond >= slo.Limit {
		return fmt.Sprintf("%s: it was %s ms", slo.Text, ms(v))
	}
	return ""
}
