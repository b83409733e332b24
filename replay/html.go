package replay

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// WriteHTML writes a self-contained HTML report (no scripts, no requests):
// the summary table, each metric's latency distribution (percentile plot
// on a log scale), and the answers' turn_to_audio over the run's time.
func (r *Report) WriteHTML(w io.Writer) error {
	stats := r.Stats()
	type row struct {
		Name               string
		Count              int64
		P50, P90, P99, Max string
		Plot               template.HTML
	}
	var rows []row
	for _, m := range Metrics {
		s := stats[m]
		rw := row{Name: m, Count: s.Count, P50: "-", P90: "-", P99: "-", Max: "-"}
		if s.Count > 0 {
			rw.P50, rw.P90, rw.P99, rw.Max = ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max)
			rw.Plot = r.percentilePlot(m)
		}
		rows = append(rows, rw)
	}
	var kinds []string
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	type errRow struct {
		Kind    string
		Count   int
		Samples []string
	}
	var errs []errRow
	for _, k := range kinds {
		errs = append(errs, errRow{k, r.Errors[k], r.Samples[k]})
	}
	return htmlReport.Execute(w, map[string]any{
		"Started": r.Started.Format(time.RFC3339), "Elapsed": r.Elapsed.Round(time.Millisecond).String(),
		"Sessions": r.Sessions, "Failed": r.Failed, "Peak": r.Peak, "Rows": rows, "Errors": errs,
		"Timeline": r.timeline(MTurnToAudio),
	})
}

const plotW, plotH, padL, padR, padT, padB = 600.0, 190.0, 76.0, 28.0, 14.0, 28.0

// percentilePlot draws the metric's latency (log scale) against the
// percentile (0 to 99.9), from the histogram.
func (r *Report) percentilePlot(metric string) template.HTML {
	h := r.Hist[metric]
	maxV := float64(h.Max())
	minV := math.Max(float64(h.Min()), 1)
	if maxV <= minV {
		maxV = minV * 10
	}
	lo, hi := math.Log10(minV), math.Log10(maxV)
	// x: percentile on a "nines" scale, so the tail gets room.
	xOf := func(p float64) float64 { return padL + (plotW-padL-padR)*(-math.Log10(1-p/100))/3 }
	yOf := func(v float64) float64 {
		return padT + (plotH-padB-padT)*(1-(math.Log10(math.Max(v, 1))-lo)/(hi-lo+1e-9))
	}
	var pts []string
	for _, p := range []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 98, 99, 99.5, 99.9} {
		v := float64(h.ValueAtPercentile(p))
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(p), yOf(v)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="%s by percentile">`, plotW, plotH, plotW, plotH, metric)
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#1d4ed8" stroke-width="2" points="%s"/>`, strings.Join(pts, " "))
	for _, p := range []float64{50, 90, 99, 99.9} {
		x := xOf(p)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="0" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">p%g</text>`,
			x, x, plotH-padB, x, plotH-8, p)
	}
	for _, v := range []float64{minV, math.Sqrt(minV * maxV), maxV} {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%s ms</text>`, padL-6, yOf(v)+4, ms(int64(v)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// timeline draws each answer's metric (ms) at its session's start time,
// to show latency over the run (warm-up, the knee of a ramp).
func (r *Report) timeline(metric string) template.HTML {
	type pt struct{ t, v float64 }
	var pts []pt
	maxV := 1.0
	for _, res := range r.Results {
		for _, t := range res.Turns {
			if d, ok := t.Times[metric]; ok && d > 0 {
				v := float64(d.Microseconds()) / 1000
				pts = append(pts, pt{res.Start.Sub(r.Started).Seconds(), v})
				maxV = math.Max(maxV, v)
			}
		}
	}
	if len(pts) == 0 {
		return ""
	}
	span := math.Max(r.Elapsed.Seconds(), 1)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="%s over the run">`, plotW, plotH, plotW, plotH, metric)
	for _, p := range pts {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2" fill="#1d4ed8" fill-opacity="0.5"/>`,
			padL+(plotW-padL-padR)*p.t/span, padT+(plotH-padB-padT)*(1-p.v/maxV))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%.1f ms</text>`, padL-6, padT+4, maxV)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end">0</text>`, padL-6, plotH-padB)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11">0 s</text><text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%.0f s</text>`,
		padL, plotH-8, plotW-padR, plotH-8, span)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var htmlReport = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parley replay report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#111}
table{border-collapse:collapse;margin:1rem 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}h2{margin-top:2rem}figure{margin:1rem 0}figcaption{color:#444}
</style></head><body>
<h1>Parley replay report</h1>
<p>Started {{.Started}}, {{.Elapsed}}: {{.Sessions}} sessions, {{.Failed}} failed, at most {{.Peak}} at once.</p>
<table><thead><tr><th>metric (ms)</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr></thead><tbody>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Count}}</td><td>{{.P50}}</td><td>{{.P90}}</td><td>{{.P99}}</td><td>{{.Max}}</td></tr>
{{end}}</tbody></table>
{{if .Errors}}<h2>Errors by kind</h2><table><tbody>{{range .Errors}}<tr><td>{{.Kind}}</td><td>{{.Count}}</td><td style="text-align:left">{{range .Samples}}{{.}}<br>{{end}}</td></tr>{{end}}</tbody></table>{{end}}
{{if .Timeline}}<h2>turn_to_audio over the run</h2><figure>{{.Timeline}}<figcaption>Each answer's end of turn to first audio, at its session's start.</figcaption></figure>{{end}}
<h2>Distributions</h2>
{{range .Rows}}{{if .Plot}}<figure>{{.Plot}}<figcaption>{{.Name}}: latency (log scale) by percentile.</figcaption></figure>{{end}}{{end}}
</body></html>
`))
