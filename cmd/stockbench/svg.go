package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
)

// throughputTarget is the target for batch on hot and spread.
const throughputTarget = 20_000

// palette gives each strategy the same colour in every panel.
var palette = map[string]string{
	seedStyle:     "#7f7f7f",
	"mutex":       "#8c564b",
	"pessimistic": "#1f77b4",
	"optimistic":  "#9467bd",
	"redis":       "#d62728",
	"atomic":      "#ff7f0e",
	"batch":       "#2ca02c",
}

// renderSVG draws throughput (orders/s, log scale) by workload and strategy,
// one panel per worker-process count, with the db-limit rate and the
// 20,000 orders/s target as lines. Hand-written SVG, no dependencies.
func renderSVG(res *results) []byte {
	var strategies, workloads []string
	var workerCounts []int
	for _, r := range res.Runs {
		if !slices.Contains(strategies, r.Strategy) {
			strategies = append(strategies, r.Strategy)
		}
		if !slices.Contains(workloads, r.Workload) {
			workloads = append(workloads, r.Workload)
		}
		if !slices.Contains(workerCounts, r.Workers) {
			workerCounts = append(workerCounts, r.Workers)
		}
	}
	slices.Sort(workerCounts)
	find := func(s, w string, k int) *runResult {
		for _, r := range res.Runs {
			if r.Strategy == s && r.Workload == w && r.Workers == k {
				return r
			}
		}
		return nil
	}

	// Log scale over every value drawn.
	lo, hi := math.Inf(1), math.Inf(-1)
	see := func(v float64) {
		if v > 0 {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	for _, r := range res.Runs {
		if r.Correct {
			see(r.OrdersPerS)
		}
	}
	limit := 0.0
	if res.DBLimit != nil && res.DBLimit.Correct {
		limit = res.DBLimit.UpdatesPerS
		see(limit)
	}
	see(throughputTarget)
	decLo, decHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if decHi <= decLo {
		decHi = decLo + 1
	}

	const (
		barW, barGap, groupGap   = 22.0, 2.0, 34.0
		left, right, top         = 78.0, 150.0, 112.0
		panelH, panelGap, bottom = 230.0, 70.0, 40.0
	)
	groupW := float64(len(strategies))*(barW+barGap) - barGap
	plotW := float64(len(workloads))*(groupW+groupGap) + groupGap
	width := max(left+plotW+right, 900)
	height := top + float64(len(workerCounts))*(panelH+panelGap) - panelGap + bottom

	var b bytes.Buffer
	text := func(x, y float64, anchor, extra, s string) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="%s"%s>`, x, y, anchor, extra)
		xml.EscapeText(&b, []byte(s)) //nolint:errcheck // bytes.Buffer does not fail
		b.WriteString("</text>\n")
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	text(width/2, 22, "middle", ` font-size="16" font-weight="bold"`, "stockflow end-to-end throughput (orders/s, log scale)")
	text(width/2, 40, "middle", ` font-size="11" fill="#555"`, res.Machine.hardware())
	text(width/2, 55, "middle", ` font-size="11" fill="#555"`, res.Machine.software())

	// Legend.
	x := left
	for _, s := range strategies {
		fmt.Fprintf(&b, `<rect x="%.1f" y="68" width="12" height="12" fill="%s"/>`+"\n", x, colour(s))
		text(x+16, 78, "start", "", s)
		x += 24 + 7.5*float64(len(s))
	}

	for pi, k := range workerCounts {
		y0 := top + float64(pi)*(panelH+panelGap) // top of the plot area
		yOf := func(v float64) float64 {
			f := (math.Log10(v) - decLo) / (decHi - decLo)
			return y0 + panelH*(1-f)
		}
		label := fmt.Sprintf("%d worker process", k)
		if k > 1 {
			label += "es"
		}
		text(left, y0-8, "start", ` font-weight="bold"`, label)
		// Grid and axis labels at 1, 2, 5 × 10^n.
		for d := decLo; d <= decHi; d++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, d)
				if math.Log10(v) > decHi+1e-9 {
					continue
				}
				y := yOf(v)
				stroke := "#eeeeee"
				if m == 1 {
					stroke = "#cccccc"
				}
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", left, y, left+plotW, y, stroke)
				text(left-6, y+4, "end", ` fill="#555"`, fmtTick(v))
			}
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, y0+panelH, left+plotW, y0+panelH)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, y0, left, y0+panelH)
		for wi, w := range workloads {
			gx := left + groupGap + float64(wi)*(groupW+groupGap)
			text(gx+groupW/2, y0+panelH+18, "middle", ` font-weight="bold"`, w)
			for si, s := range strategies {
				bx := gx + float64(si)*(barW+barGap)
				r := find(s, w, k)
				switch {
				case r == nil:
					continue
				case r.Skipped != "":
					text(bx+barW/2, y0+panelH-4, "middle", ` font-size="9" fill="#999"`, "n/a")
				case !r.Correct || r.OrdersPerS <= 0:
					fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#d62728" stroke-dasharray="3,2"/>`+"\n",
						bx, y0, barW, panelH)
					text(bx+barW/2, y0+panelH-4, "middle", ` font-size="9" fill="#d62728"`, "FAIL")
				default:
					y := yOf(r.OrdersPerS)
					fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>`, bx, y, barW, y0+panelH-y, colour(s))
					xml.EscapeText(&b, []byte(fmt.Sprintf("%s: %.0f orders/s", r.Name, r.OrdersPerS))) //nolint:errcheck
					b.WriteString("</title></rect>\n")
					fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9" transform="rotate(-90 %.1f %.1f)">`,
						bx+barW/2+3, y-3, bx+barW/2+3, y-3)
					xml.EscapeText(&b, []byte(fmtRate(r.OrdersPerS))) //nolint:errcheck
					b.WriteString("</text>\n")
				}
			}
		}
		ref := func(v float64, colour, dash, name string) {
			if v <= 0 {
				return
			}
			y := yOf(v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="%s"/>`+"\n",
				left, y, left+plotW, y, colour, dash)
			text(left+plotW+6, y+4, "start", fmt.Sprintf(` fill="%s"`, colour), fmt.Sprintf("%s %s", name, fmtRate(v)))
		}
		ref(limit, "#d62728", "6,3", "db-limit")
		ref(throughputTarget, "#2ca02c", "2,3", "target")
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func colour(strategy string) string {
	if c, ok := palette[strategy]; ok {
		return c
	}
	return "#17becf"
}

// fmtTick renders an axis value: 100, 1k, 20k, 1M.
func fmtTick(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1000:
		return fmt.Sprintf("%gk", v/1000)
	default:
		return fmt.Sprintf("%g", v)
	}
}
