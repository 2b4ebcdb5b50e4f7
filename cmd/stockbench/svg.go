package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strconv"
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
// 20,000 orders/s target as lines. A strategy has a bar per lanes it ran
// with, in the same place in every panel: solid for its default lanes, light
// and hatched for another -lanes value (the lanes=1 baseline), the lanes
// written under each bar. Hand-written SVG, no dependencies.
func renderSVG(res *results) []byte {
	var strategies, workloads []string
	var workerCounts []int
	slots := map[string][]int{} // strategy → its lanes, ascending; 0: unknown
	hasLanes, hasLight := false, false
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
		if !slices.Contains(slots[r.Strategy], r.Lanes) {
			slots[r.Strategy] = append(slots[r.Strategy], r.Lanes)
		}
		hasLanes = hasLanes || r.Lanes > 0
		hasLight = hasLight || (r.Lanes > 0 && !r.LanesDefault)
	}
	slices.Sort(workerCounts)
	nSlots := 0
	for _, s := range strategies {
		slices.Sort(slots[s])
		nSlots += len(slots[s])
	}
	find := func(s, w string, k, lanes int) *runResult {
		for _, r := range res.Runs {
			if r.Strategy == s && r.Workload == w && r.Workers == k && r.Lanes == lanes {
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
		barW, barGap, strategyGap, groupGap = 22.0, 2.0, 6.0, 34.0
		left, right                         = 78.0, 150.0
		panelH                              = 230.0
	)
	// With lanes: a second legend line and a row of lanes under the bars.
	top, panelGap, bottom, laneRow := 112.0, 70.0, 40.0, 0.0
	if hasLanes {
		top, panelGap, bottom, laneRow = 126.0, 82.0, 52.0, 12.0
	}
	groupW := max(float64(nSlots)*(barW+barGap)-barGap+float64(len(strategies)-1)*strategyGap, 0)
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
	// White stripes over a light bar: the hatch of the non-default lanes.
	b.WriteString(`<defs><pattern id="hatch" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
		`<line x1="0" y1="0" x2="0" y2="5" stroke="#ffffff" stroke-width="2"/></pattern></defs>` + "\n")
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
	if hasLanes {
		x = left
		for _, l := range []struct {
			light bool
			label string
		}{{false, "default lanes of the strategy"}, {true, "other -lanes (1: one decision at a time)"}} {
			if l.light && !hasLight {
				continue
			}
			bar(&b, x, 86, 12, 12, "#777", l.light)
			b.WriteString("\n")
			text(x+16, 96, "start", "", l.label)
			x += 30 + 6.5*float64(len(l.label))
		}
		text(x, 96, "start", ` fill="#555"`, "under each bar: its lanes")
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
		if hasLanes {
			text(left-6, y0+panelH+laneRow, "end", ` font-size="9" fill="#555"`, "lanes")
		}
		for wi, w := range workloads {
			gx := left + groupGap + float64(wi)*(groupW+groupGap)
			text(gx+groupW/2, y0+panelH+18+laneRow, "middle", ` font-weight="bold"`, w)
			bx := gx
			for _, s := range strategies {
				for _, ln := range slots[s] {
					r := find(s, w, k, ln)
					if r != nil && r.Lanes > 0 {
						text(bx+barW/2, y0+panelH+laneRow, "middle", ` font-size="9" fill="#555"`, strconv.Itoa(r.Lanes))
					}
					switch {
					case r == nil:
					case r.Skipped != "":
						text(bx+barW/2, y0+panelH-4, "middle", ` font-size="9" fill="#999"`, "n/a")
					case !r.Correct || r.OrdersPerS <= 0:
						fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#d62728" stroke-dasharray="3,2"><title>`,
							bx, y0, barW, panelH)
						xml.EscapeText(&b, []byte(r.Name+": failed")) //nolint:errcheck
						b.WriteString("</title></rect>\n")
						text(bx+barW/2, y0+panelH-4, "middle", ` font-size="9" fill="#d62728"`, "FAIL")
					default:
						y := yOf(r.OrdersPerS)
						light := r.Lanes > 0 && !r.LanesDefault
						title := fmt.Sprintf("%s: %.0f orders/s", r.Name, r.OrdersPerS)
						switch {
						case r.Lanes == 0:
							title += ", lanes unknown"
						case r.LanesDefault:
							title += fmt.Sprintf(", %s default lanes", r.Strategy)
						}
						b.WriteString("<g><title>")
						xml.EscapeText(&b, []byte(title)) //nolint:errcheck
						b.WriteString("</title>")
						bar(&b, bx, y, barW, y0+panelH-y, colour(s), light)
						b.WriteString("</g>\n")
						fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9" transform="rotate(-90 %.1f %.1f)">`,
							bx+barW/2+3, y-3, bx+barW/2+3, y-3)
						xml.EscapeText(&b, []byte(fmtRate(r.OrdersPerS))) //nolint:errcheck
						b.WriteString("</text>\n")
					}
					bx += barW + barGap
				}
				bx += strategyGap
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

// bar draws one bar: solid, or light (the colour at a third of its opacity,
// outlined) and hatched.
func bar(b *bytes.Buffer, x, y, w, h float64, fill string, light bool) {
	if !light {
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x, y, w, h, fill)
		return
	}
	fmt.Fprintf(b, `<rect class="light" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.35" stroke="%s"/>`, x, y, w, h, fill, fill)
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="url(#hatch)"/>`, x, y, w, h)
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
