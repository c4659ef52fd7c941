//go:build integration

package consumer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
)

// A crash test runs its first consumer in a child process, the test binary
// itself running TestCrashChild, and kills it with SIGKILL: nothing of
// kretry's runs after the kill, as when a process dies.

// crashChildEnv holds the crashSpec of the consumer TestCrashChild runs.
const crashChildEnv = "KRETRY_TEST_CRASH_CHILD"

// crashLinePrefix starts the lines a child's handler writes to its stdout.
const crashLinePrefix = "kretry-crash-child: "

// crashSpec is the consumer a child runs.
type crashSpec struct {
	Config      *config.Config
	Handler     string        // a key of crashHandlers
	CommitEvery time.Duration // kgo.AutoCommitInterval; 0: the default
	NoRelay     bool
	Out         string // the topic the handler emits to, if it does
}

// crashHandlers build the handlers crash tests run, in the child and in the
// test: note reports what the handler did, a line of text.
var crashHandlers = map[string]func(s crashSpec, note func(string)) consumer.Handler{
	"fail-even-once": failEvenOnce,
	"txn-block":      func(s crashSpec, note func(string)) consumer.Handler { return txnHandler(s.Out, true, note) },
}

// TestCrashChild is the consumer of a crash test's child process: it runs
// until it is killed.
func TestCrashChild(t *testing.T) {
	raw := os.Getenv(crashChildEnv)
	if raw == "" {
		t.Skip("runs only as the child process of a crash test")
	}
	var s crashSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	note := func(line string) { os.Stdout.WriteString(crashLinePrefix + line + "\n") }
	opts := []consumer.Opt{consumer.WithRelay(!s.NoRelay)}
	if s.CommitEvery > 0 {
		opts = append(opts, consumer.WithClientOpts(kgo.AutoCommitInterval(s.CommitEvery)))
	}
	c, err := consumer.New(s.Config, crashHandlers[s.Handler](s, note), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Fatalf("Run returned before the kill: %v", c.Run(context.Background()))
}

// crashChild is a consumer running in a child process.
type crashChild struct {
	t    *testing.T
	cmd  *exec.Cmd
	read chan struct{} // closed when its stdout is read to the end
}

// startCrashChild starts a child process running spec's consumer; onLine is
// called, on one goroutine, with each line its handler notes.
func startCrashChild(t *testing.T, spec crashSpec, onLine func(string)) *crashChild {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.timeout=10m", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &crashChild{t: t, cmd: cmd, read: make(chan struct{})}
	go func() {
		defer close(c.read)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), crashLinePrefix); ok {
				onLine(line)
			} else {
				fmt.Fprintln(os.Stderr, sc.Text()) // the child test's own output, if it failed
			}
		}
	}()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			<-c.read
			c.cmd.Wait()
		}
	})
	return c
}

// kill kills the child with SIGKILL and returns once every line it noted has
// been passed on; the test fails unless the kill is what ended it.
func (c *crashChild) kill() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("killing the child consumer: %v", err)
	}
	<-c.read
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		c.t.Fatalf("child consumer: %v, want killed", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("child consumer ended with %v before the kill", err)
	}
}
