package bench

import (
	"strings"
	"testing"
	"time"
)

// A cost row (Lower) is met at or under its ratio, a throughput row at
// or over it, and the table says which.
func TestRowGoals(t *testing.T) {
	cost := &Row{Name: "cpu", Unit: "µs/req", Lower: true, Target: 1.4, Targets: []Target{{Name: "ceiling"}, {Name: "zombi"}}, Base: 0, Zombi: 1}
	rate := &Row{Name: "rate", Unit: "events/s", Target: 0.7, Targets: []Target{{Name: "ceiling"}, {Name: "zombi"}}, Base: 0, Zombi: 1}
	for _, c := range []struct {
		row         *Row
		base, zombi float64
		met         bool
		ratio, goal string
	}{
		{cost, 30, 42, true, "1.40×", "≤ 1.40×"},
		{cost, 30, 45, false, "1.50×", "≤ 1.40×"},
		{rate, 100, 70, true, "70.0 %", "≥ 70 %"},
		{rate, 100, 60, false, "60.0 %", "≥ 70 %"},
	} {
		r := &RowResult{Row: c.row, Medians: []float64{c.base, c.zombi}, Values: [][]float64{{c.base}, {c.zombi}}, CPU: [][]float64{{1}, {2}}}
		if r.Met() != c.met {
			t.Errorf("%s %v/%v: met %v, want %v", c.row.Name, c.zombi, c.base, r.Met(), c.met)
		}
		table := SuiteTable(SuiteConfig{}, "test", time.Now(), "", []*RowResult{r}, nil, 0)
		if !strings.Contains(table, "| "+c.ratio+" | "+c.goal+" |") {
			t.Errorf("%s %v/%v: table lacks ratio %q and goal %q:\n%s", c.row.Name, c.zombi, c.base, c.ratio, c.goal, table)
		}
	}
}
