package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SelfCPU returns the user+system CPU time this process has used so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSS returns the peak resident set size (VmHWM) of process pid in bytes,
// read from /proc/<pid>/status. pid 0 means this process.
func PeakRSS(pid int) (int64, error) {
	return procStatusKB(pid, "VmHWM")
}

// RSS returns the current resident set size (VmRSS) of process pid in bytes.
func RSS(pid int) (int64, error) {
	return procStatusKB(pid, "VmRSS")
}

func procStatusKB(pid int, field string) (int64, error) {
	p := "/proc/self/status"
	if pid > 0 {
		p = fmt.Sprintf("/proc/%d/status", pid)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return parseStatusKB(data, field)
}

// parseStatusKB finds "field:   1234 kB" in the text of a /proc status file.
func parseStatusKB(data []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	prefix := field + ":"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		fs := strings.Fields(strings.TrimPrefix(line, prefix))
		if len(fs) != 2 || fs[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", field, line)
		}
		kb, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected %s line %q: %w", field, line, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no %s line in process status", field)
}
