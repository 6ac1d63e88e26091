package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteSVG draws the timeline: events/s (or MB/s for large payloads) on
// the left axis, p50 and p99 write latency on the right one (log scale),
// time along the bottom. Hand-written SVG, no chart library.
func (r *Report) WriteSVG(w io.Writer) error {
	const (
		W, H                 = 960, 420
		left, right, top, bt = 80, 90, 50, 50
		pw, ph               = W - left - right, H - top - bt
	)
	pts := r.Timeline
	useMB := r.Size >= 4096
	thr := func(p Point) float64 {
		if useMB {
			return p.MBPerSec
		}
		return p.EventsPerSec
	}
	thrName := "events/s"
	if useMB {
		thrName = "payload MB/s"
	}
	tMax, yMax := 1.0, 1.0
	latMin, latMax := math.Inf(1), 0.0
	for _, p := range pts {
		tMax = max(tMax, p.T)
		yMax = max(yMax, thr(p))
		for _, v := range []float64{p.P50us, p.P99us} {
			if v > 0 {
				latMin, latMax = min(latMin, v), max(latMax, v)
			}
		}
	}
	yMax = niceCeil(yMax * 1.1)
	if latMax == 0 {
		latMin, latMax = 1, 10
	}
	lo := math.Pow(10, math.Floor(math.Log10(latMin)))
	hi := math.Pow(10, math.Ceil(math.Log10(latMax*1.01)))
	if hi <= lo {
		hi = lo * 10
	}
	x := func(t float64) float64 { return left + t/tMax*pw }
	yT := func(v float64) float64 { return top + ph - v/yMax*ph }
	yL := func(us float64) float64 {
		if us <= 0 {
			us = lo
		}
		return top + ph - (math.Log10(us)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*ph
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	title := fmt.Sprintf("zombi load %s · %s · %d conns · %d B × %d · %s events/s · p99 %s",
		r.Scenario, r.Encoding, r.Conns, r.Size, r.Batch, si(r.EventsPerSec), fmtDur(r.Latency.P99))
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="14" font-weight="bold">%s</text>`+"\n", left, xmlEscape(title))
	// Grid and left axis.
	for i := 0; i <= 5; i++ {
		v := yMax * float64(i) / 5
		y := yT(v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, left, left+pw, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#1f77b4">%s</text>`+"\n", left-6, y+4, si(v))
	}
	// Right axis: decades of latency.
	for v := lo; v <= hi*1.001; v *= 10 {
		y := yL(v)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#d62728">%s</text>`+"\n", left+pw+6, y+4, fmtDur(v))
	}
	// Time axis.
	step := niceCeil(tMax / 8)
	for t := 0.0; t <= tMax+1e-9; t += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%gs</text>`, x(t), top+ph+18, t)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#1f77b4" transform="rotate(-90 %d %d)">%s</text>`+"\n",
		18, top+ph/2, 18, top+ph/2, thrName)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#d62728" transform="rotate(90 %d %d)">write latency (log)</text>`+"\n",
		W-12, top+ph/2, W-12, top+ph/2)
	line := func(color, dash string, f func(Point) (float64, float64)) {
		if len(pts) == 0 {
			return
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="`, color, dash)
		for _, p := range pts {
			px, py := f(p)
			fmt.Fprintf(&b, "%.1f,%.1f ", px, py)
		}
		b.WriteString("\"/>\n")
	}
	line("#1f77b4", "", func(p Point) (float64, float64) { return x(p.T), yT(thr(p)) })
	line("#ff7f0e", "", func(p Point) (float64, float64) { return x(p.T), yL(p.P50us) })
	line("#d62728", "4 3", func(p Point) (float64, float64) { return x(p.T), yL(p.P99us) })
	// Legend.
	for i, l := range []struct{ color, name string }{{"#1f77b4", thrName}, {"#ff7f0e", "p50 latency"}, {"#d62728", "p99 latency"}} {
		lx := left + 10 + i*150
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, lx+24, top+14, top+14, l.color, lx+30, top+18, l.name)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
