package bench

import (
	"math"
	"os"
	"strings"
	"testing"
)

func TestPercentile(t *testing.T) {
	xs := func() []float64 {
		s := make([]float64, 100)
		for i := range s {
			s[i] = float64(100 - i) // 100..1, unsorted
		}
		return s
	}
	for _, tc := range []struct {
		p    float64
		want float64
	}{
		{0, 1}, {1, 1}, {50, 50}, {99, 99}, {99.5, 100}, {100, 100},
	} {
		if got := Percentile(xs(), tc.p); got != tc.want {
			t.Errorf("Percentile(1..100, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile([]float64{7}, 99); got != 7 {
		t.Errorf("Percentile([7], 99) = %v, want 7", got)
	}
	if got := Percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("Percentile(nil, 50) = %v, want NaN", got)
	}
}

func TestMedian(t *testing.T) {
	in := []float64{3, 1, 2}
	if got := Median(in); got != 2 {
		t.Errorf("Median(3,1,2) = %v, want 2", got)
	}
	if in[0] != 3 || in[1] != 1 {
		t.Errorf("Median changed its input: %v", in)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("Median(4,1,3,2) = %v, want 2.5", got)
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tbench\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t    2048 kB\n"
	if got, err := parseStatusKB([]byte(status), "VmHWM"); err != nil || got != 12345*1024 {
		t.Errorf("VmHWM = %d, %v; want %d", got, err, 12345*1024)
	}
	if got, err := parseStatusKB([]byte(status), "VmRSS"); err != nil || got != 2048*1024 {
		t.Errorf("VmRSS = %d, %v; want %d", got, err, 2048*1024)
	}
	if _, err := parseStatusKB([]byte(status), "VmSwap"); err == nil {
		t.Error("a missing field gave no error")
	}
	if _, err := parseStatusKB([]byte("VmHWM:\t12 MB\n"), "VmHWM"); err == nil {
		t.Error("a value not in kB gave no error")
	}
}

func TestPeakRSSOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	// RSS first: the peak read after it is at least as high.
	rss, err := RSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	peak, err := PeakRSS(0)
	if err != nil {
		t.Fatal(err)
	}
	if peak <= 0 || rss <= 0 || rss > peak {
		t.Errorf("peak RSS %d, RSS %d: want 0 < RSS ≤ peak", peak, rss)
	}
}

func TestSelfCPUGrows(t *testing.T) {
	before := SelfCPU()
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i % 7
	}
	_ = x
	if after := SelfCPU(); after <= before {
		t.Errorf("CPU time did not grow over a busy loop: %v → %v", before, after)
	}
}

func TestTableMarkdown(t *testing.T) {
	tb := &Table{Header: []string{"side", "records/s"}}
	tb.Add("raw", 1000)
	tb.Add("kretry", 990.5)
	want := "" +
		"| side   | records/s |\n" +
		"| ------ | --------- |\n" +
		"| raw    | 1000      |\n" +
		"| kretry | 990.5     |\n"
	if got := tb.Markdown(); got != want {
		t.Errorf("Markdown() =\n%s\nwant\n%s", got, want)
	}
}

func TestReportEndsWithSummary(t *testing.T) {
	r := &Report{
		Title:    "kretry benchmarks",
		Preamble: []string{"- Go: go1.x"},
		Sections: []Section{{Title: "B1", Text: []string{"text"}, Table: &Table{Header: []string{"a"}, Rows: [][]string{{"1"}}}}},
		Summary:  []string{"B1 ratio=0.990", "B4 rss_mib=40.0"},
	}
	md := r.Markdown()
	for _, want := range []string{"# kretry benchmarks\n", "## B1\n", "| a |", "```\nB1 ratio=0.990\nB4 rss_mib=40.0\n```\n"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	var b strings.Builder
	if err := r.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != "B1 ratio=0.990\nB4 rss_mib=40.0\n" {
		t.Errorf("WriteSummary wrote %q", b.String())
	}
}

func TestReadMachine(t *testing.T) {
	m := ReadMachine()
	if m.Cores < 1 {
		t.Errorf("Cores = %d", m.Cores)
	}
	if s := m.String(); !strings.Contains(s, "logical CPUs") {
		t.Errorf("String() = %q", s)
	}
}
