package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
)

// Machine describes where a benchmark ran.
type Machine struct {
	CPU      string // model name from /proc/cpuinfo
	Cores    int    // logical CPUs the Go runtime sees
	MemTotal int64  // bytes, from /proc/meminfo
	OS       string // GOOS/GOARCH and kernel release
}

// ReadMachine reads the CPU model, the core count and the memory of this machine.
func ReadMachine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if n, err := parseStatusKB(data, "MemTotal"); err == nil {
			m.MemTotal = n
		}
	}
	if rel, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS += ", Linux " + strings.TrimSpace(string(rel))
	}
	return m
}

func (m Machine) String() string {
	return fmt.Sprintf("%s, %d logical CPUs, %.1f GiB RAM, %s",
		m.CPU, m.Cores, float64(m.MemTotal)/(1<<30), m.OS)
}

// ModuleVersion returns the version of module path in this binary's build info,
// or "unknown".
func ModuleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}

var kafkaJar = regexp.MustCompile(`kafka_[0-9.]+-([0-9][0-9A-Za-z.\-]*?)\.jar$`)

// LocalKafkaVersion looks for a running Kafka broker on this machine and
// returns its version from the name of its kafka_2.13-X.jar, or "" when there
// is none. The jar is found through the class path in /proc/<pid>/cmdline.
func LocalKafkaVersion(ctx context.Context) string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if ctx.Err() != nil {
			return ""
		}
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte("kafka.Kafka")) {
			continue
		}
		args := strings.Split(string(data), "\x00")
		for i, a := range args {
			if (a != "-cp" && a != "-classpath") || i+1 >= len(args) {
				continue
			}
			for _, entry := range strings.Split(args[i+1], ":") {
				matches, _ := filepath.Glob(entry)
				if strings.HasSuffix(entry, ".jar") {
					matches = append(matches, entry)
				}
				for _, m := range matches {
					if v := kafkaJar.FindStringSubmatch(filepath.Base(m)); v != nil {
						return v[1]
					}
				}
			}
		}
	}
	return ""
}
