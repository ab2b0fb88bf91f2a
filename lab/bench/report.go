package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Status says how a measurement compares with its target.
type Status int

// Statuses of a Verdict.
const (
	// NotMeasured: the figure could not be measured (the Limit says why).
	NotMeasured Status = iota
	// Met: the measurement meets the target.
	Met
	// Missed: the measurement misses the target (the Limit says what limits it).
	Missed
	// Reported: a figure reported without a pass/fail target.
	Reported
)

// String is the status as the report shows it.
func (s Status) String() string {
	switch s {
	case Met:
		return "met"
	case Missed:
		return "missed"
	case Reported:
		return "reported"
	}
	return "not measured"
}

// markdown is the status as shown in the report.
func (s Status) markdown() string {
	switch s {
	case Met:
		return "**met**"
	case Missed:
		return "**missed**"
	case Reported:
		return "reported"
	}
	return "not measured"
}

// Verdict compares one measurement with its target.
type Verdict struct {
	// Target is what should hold, e.g. "routed ≥ 0.9× underlay".
	Target string
	// Measured is the figure the verdict rests on, e.g. "0.95× (median of 3 trials)".
	Measured string
	Status   Status
	// Limit says what limits the figure, or why it was not measured.
	Limit string
}

// Check returns Met when ok holds and Missed otherwise, or NotMeasured when value is NaN.
func Check(value float64, ok bool) Status {
	switch {
	case math.IsNaN(value):
		return NotMeasured
	case ok:
		return Met
	}
	return Missed
}

// Table is a Markdown table with an optional caption above it.
type Table struct {
	Caption string
	Header  []string
	Rows    [][]string
}

// AddRow appends a row.
func (t *Table) AddRow(cells ...string) { t.Rows = append(t.Rows, cells) }

// Section is one part of the report: how it was measured, its tables, its verdicts.
type Section struct {
	// Key names the section for --only (e.g. "throughput").
	Key   string
	Title string
	// Method says what was measured and how (a paragraph).
	Method   string
	Tables   []Table
	Verdicts []Verdict
	Notes    []string
	// Err is why the section (or part of it) could not run; its verdicts without a
	// measurement then say "not measured".
	Err error
	// Took is how long the section ran; Load the 1-minute load average when it started.
	Took time.Duration
	Load string
}

// Machine describes the machine the suite ran on.
type Machine struct {
	Cores    int
	CPU      string
	MemGiB   float64
	Kernel   string
	OVS      string
	Datapath string
	Go       string
	Iperf3   string
}

// Report is one run of the suite.
type Report struct {
	// Command is the exact command line that produced the report.
	Command string
	Started time.Time
	Took    time.Duration
	Machine Machine
	// LoadStart and LoadEnd are /proc/loadavg at the start and end of the run.
	LoadStart, LoadEnd string
	// Notes are remarks on the whole run (shown before the summary).
	Notes    []string
	Sections []*Section
}

// Render writes the report as Markdown.
func (r *Report) Render(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("This page is generated: `make bench` builds the binaries and runs the suite " +
		"(package `lab/bench`, command `lab/cmd/bench`), which rewrites it. Do not edit it by hand.\n\n")
	fmt.Fprintf(&b, "- command: `%s`\n", r.Command)
	fmt.Fprintf(&b, "- date: %s, the run took %s\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Took.Round(time.Second))
	m := r.Machine
	fmt.Fprintf(&b, "- machine: %d cores (%s), %.1f GiB RAM, kernel %s\n", m.Cores, orUnknown(m.CPU), m.MemGiB, orUnknown(m.Kernel))
	fmt.Fprintf(&b, "- Open vSwitch: %s, datapath %s\n", orUnknown(m.OVS), orUnknown(m.Datapath))
	fmt.Fprintf(&b, "- tools: %s, %s\n", orUnknown(m.Go), orUnknown(m.Iperf3))
	fmt.Fprintf(&b, "- load average (1, 5, 15 min) at the start: %s; at the end: %s\n", orUnknown(r.LoadStart), orUnknown(r.LoadEnd))
	b.WriteString("\n")
	for _, n := range r.Notes {
		b.WriteString(n + "\n\n")
	}

	b.WriteString("## Summary\n\n")
	sum := Table{Header: []string{"section", "target", "measured", "status"}}
	for _, s := range r.Sections {
		for _, v := range s.Verdicts {
			sum.AddRow(fmt.Sprintf("[%s](#%s)", s.Title, anchor(s.Title)), v.Target, v.Measured, v.Status.markdown())
		}
	}
	writeTable(&b, sum)

	for _, s := range r.Sections {
		fmt.Fprintf(&b, "## %s\n\n", s.Title)
		if s.Method != "" {
			b.WriteString(s.Method + "\n\n")
		}
		if s.Err != nil {
			fmt.Fprintf(&b, "**The section did not complete:** %s\n\n", oneLine(s.Err.Error()))
		}
		for _, t := range s.Tables {
			writeTable(&b, t)
		}
		if len(s.Verdicts) > 0 {
			t := Table{Header: []string{"target", "measured", "status", "what limits it"}}
			for _, v := range s.Verdicts {
				t.AddRow(v.Target, v.Measured, v.Status.markdown(), v.Limit)
			}
			writeTable(&b, t)
		}
		for _, n := range s.Notes {
			b.WriteString("- " + n + "\n")
		}
		if len(s.Notes) > 0 {
			b.WriteString("\n")
		}
		if s.Took > 0 || s.Load != "" {
			fmt.Fprintf(&b, "_Section ran %s; load average at its start: %s._\n\n", s.Took.Round(time.Second), orUnknown(s.Load))
		}
	}
	_, err := io.WriteString(w, strings.TrimRight(b.String(), "\n")+"\n")
	return err
}

func writeTable(b *strings.Builder, t Table) {
	if t.Caption != "" {
		b.WriteString(t.Caption + "\n\n")
	}
	if len(t.Header) == 0 {
		return
	}
	row := func(cells []string) {
		b.WriteString("|")
		for i := range t.Header {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			b.WriteString(" " + cell(c) + " |")
		}
		b.WriteString("\n")
	}
	row(t.Header)
	b.WriteString("|" + strings.Repeat("---|", len(t.Header)) + "\n")
	for _, r := range t.Rows {
		row(r)
	}
	b.WriteString("\n")
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	s = oneLine(s)
	s = strings.ReplaceAll(s, "|", `\|`)
	if s == "" {
		return "—"
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// anchor is GitHub's heading anchor for a title.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r == ' ' || r == '-':
			b.WriteRune('-')
		case r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		case r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func orUnknown(s string) string {
	if strings.TrimSpace(s) == "" {
		return "unknown"
	}
	return s
}

// num formats v with a precision that suits its size: 3 significant digits, at most 2
// decimals; "n/a" for NaN.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "n/a"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// spread formats "min–max" of s.
func spread(s Summary) string {
	if s.N == 0 {
		return "n/a"
	}
	return num(s.Min) + "–" + num(s.Max)
}

// ratio formats v as "0.93×".
func ratio(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", v)
}
