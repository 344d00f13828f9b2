package main

// The timeline of one run under AWS's timing, as an SVG Gantt chart: one row per
// state, in the order the run first entered them, a bar for each time it was in it,
// the states on the limit's critical path marked, and a last row with the limit's
// own path laid end to end. Written by hand: a Gantt chart needs named rows and no
// axes beyond time, and plain SVG elements are what its test reads.

import (
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

// Layout of the chart, in SVG user units.
const (
	ganttLabelWidth = 230.0
	ganttPlotWidth  = 820.0
	ganttRowHeight  = 16.0
	ganttTop        = 40.0
	ganttBottom     = 40.0
)

// ganttRows are the run's states in the order it first entered them, each with its
// spans.
func ganttRows(timeline []Span) ([]string, map[string][]Span) {
	var order []string
	bars := map[string][]Span{}
	for _, s := range timeline {
		if _, seen := bars[s.State]; !seen {
			order = append(order, s.State)
		}
		bars[s.State] = append(bars[s.State], s)
	}
	return order, bars
}

// GanttSVG draws r's timeline (AWS seconds); critical names the states on the
// limit's critical path.
func GanttSVG(r LatencyRun, critical map[string]bool) string {
	order, bars := ganttRows(r.Timeline)
	end := max(r.RunSeconds, r.LimitSeconds)
	for _, s := range r.Timeline {
		end = max(end, s.End)
	}
	if end <= 0 {
		end = 1
	}
	x := func(sec float64) float64 { return ganttLabelWidth + sec/end*ganttPlotWidth }
	rows := len(order) + 1
	height := ganttTop + float64(rows)*ganttRowHeight + ganttBottom
	width := ganttLabelWidth + ganttPlotWidth + 20

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	w(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	w(`<text x="10" y="18" font-size="13">%s</text>`+"\n", html.EscapeString(fmt.Sprintf(
		"amifleet under AWS's timing: %d replicas, seed %d: run %.0f s, physical limit %.0f s (AWS seconds)", r.Replicas, r.Seed, r.RunSeconds, r.LimitSeconds)))
	w(`<text x="10" y="32" fill="#555">critical path: states in red; the last row is the limit's own path (tasks, AWS changes, health checks) end to end</text>` + "\n")
	// A tick every minute (or every 10 s for a short run), with its grid line.
	step := 60.0
	if end < 120 {
		step = 10
	}
	bottom := ganttTop + float64(rows)*ganttRowHeight
	for t := 0.0; t <= end+1e-9; t += step {
		w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x(t), ganttTop, x(t), bottom)
		w(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%.0f s</text>`+"\n", x(t), bottom+14, t)
	}
	for i, state := range order {
		y := ganttTop + float64(i)*ganttRowHeight
		class, fill := "bar", "#7a9cc6"
		if critical[state] {
			class, fill = "bar critical", "#d0473c"
		}
		w(`<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", ganttLabelWidth-6, y+ganttRowHeight-4, html.EscapeString(state))
		for _, s := range bars[state] {
			// A state that took no time still shows as a sliver.
			wd := math.Max(x(s.End)-x(s.Start), 1)
			w(`<rect class="%s" data-state="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %.1f–%.1f s</title></rect>`+"\n",
				class, html.EscapeString(state), x(s.Start), y+2, wd, ganttRowHeight-4, fill, html.EscapeString(state), s.Start, s.End)
		}
	}
	y := ganttTop + float64(len(order))*ganttRowHeight
	w(`<text x="%.1f" y="%.1f" text-anchor="end" font-weight="bold">physical limit</text>`+"\n", ganttLabelWidth-6, y+ganttRowHeight-4)
	colors := map[string]string{StepTask: "#e6a23c", StepAWS: "#5b8c5a", StepHealth: "#8e6bb8"}
	at := 0.0
	for _, s := range r.Path {
		w(`<rect class="limit %s" data-step="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="white" stroke-width="0.5"><title>%s: %.1f s</title></rect>`+"\n",
			s.Kind, html.EscapeString(s.Name), x(at), y+2, math.Max(x(at+s.Seconds)-x(at), 0.5), ganttRowHeight-4, colors[s.Kind], html.EscapeString(s.Name), s.Seconds)
		at += s.Seconds
	}
	w(`<text x="%.1f" y="%.1f" fill="#555">limit: task (orange), AWS change (green), health checks (purple)</text>`+"\n", ganttLabelWidth, bottom+30)
	w("</svg>\n")
	return b.String()
}

// WriteGantt writes GanttSVG to path.
func WriteGantt(path string, r LatencyRun, critical map[string]bool) error {
	return os.WriteFile(path, []byte(GanttSVG(r, critical)), 0o644)
}
