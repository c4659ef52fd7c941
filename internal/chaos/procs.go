package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kretry/kretry/config"
)

// Binaries are the programs the suite runs as processes of their own.
type Binaries struct {
	Worker string // internal/chaos/cmd/chaosworker
	Kretry string // cmd/kretry, for `kretry relay`
}

// Build builds the binaries from the repository at root into dir.
func Build(ctx context.Context, root, dir string) (Binaries, error) {
	b := Binaries{Worker: filepath.Join(dir, "chaosworker"), Kretry: filepath.Join(dir, "kretry")}
	for pkg, out := range map[string]string{"./internal/chaos/cmd/chaosworker": b.Worker, "./cmd/kretry": b.Kretry} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return b, nil
}

// RepoRoot walks up from the working directory to the directory holding
// scripts/kafka/cluster.sh.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "kafka", "cluster.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/kafka/cluster.sh is not in the working directory or above it: run from the kretry repository")
		}
		dir = parent
	}
}

// proc is one child process the suite started; it is only ever signalled by
// its own pid.
type proc struct {
	kind     string // "worker" or "relay"
	instance string // its KRETRY_INSTANCE_ID, or ""
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{}
	err      error
}

// startProc starts bin; instance, when not "", is its KRETRY_INSTANCE_ID.
func startProc(kind, bin string, args []string, logPath, instance string) (*proc, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv()
	if instance != "" {
		cmd.Env = append(cmd.Env, config.EnvInstanceID+"="+instance)
	}
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a ^C of the suite reaches the suite, which
	// stops its children itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{kind: kind, instance: instance, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitNote says that p exited by itself, with the last two lines of its log
// (where the worker and kretry print the error that stopped them).
func (p *proc) exitNote() string {
	log, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) > 2 {
		lines = lines[len(lines)-2:]
	}
	return fmt.Sprintf("a %s exited by itself (%v): %s", p.kind, p.err, strings.Join(lines, " | "))
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to grace, then kills.
func (p *proc) stop(grace time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("%s %d did not stop within %v of SIGTERM; killed it", p.kind, p.pid(), grace)
	}
}

// childEnv is this process's environment without the variables that would
// replace what a run's kretry.yaml says (make test sets KRETRY_BROKERS to the
// shared broker, which the suite must not touch).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == config.EnvBrokers || k == config.EnvGroup || k == config.EnvInstanceID {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
