// Command chaos runs kretry's fault suite (make chaos): every scenario of
// internal/chaos in both modes, one line per scenario and mode on stdout,
// and writes the table to RELIABILITY.md.
//
// -only runs some of them (e.g. -only g to run one scenario), -modes one
// mode.
//
//	chaos [-short] [-keep] [-only a,b,...] [-modes at-least-once,exactly_once] [-out RELIABILITY.md] [-timeout 25m]
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kretry/kretry/internal/bench"
	"github.com/kretry/kretry/internal/chaos"
)

func main() {
	only := flag.String("only", "a,b,c,d,e,f,g,h,i", "scenarios to run, comma-separated")
	modes := flag.String("modes", "at-least-once,exactly_once", "modes to run, comma-separated")
	out := flag.String("out", "RELIABILITY.md", "write the table here (empty: nowhere)")
	timeout := flag.Duration("timeout", 25*time.Minute, "give up after this long")
	short := flag.Bool("short", false, "the short version's sizes (a few faults)")
	keep := flag.Bool("keep", false, "keep the configs, logs and events of the runs (else removed when every run ran)")
	flag.Parse()
	size := chaos.Full
	if *short {
		size = chaos.Short
	}
	if err := run(*only, *modes, *out, *timeout, size, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func run(only, modeList, out string, timeout time.Duration, size chaos.Size, keep bool) error {
	started := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	root, err := chaos.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kretry-chaos-")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "chaos: logs, configs and events in %s\n", dir)
	// The commit the binaries are built from; "-dirty" if the tree has changes.
	commit, _ := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	bins, err := chaos.Build(ctx, root, dir)
	if err != nil {
		return err
	}
	env := &chaos.Env{Root: root, Bins: bins, Dir: dir, Log: os.Stderr}
	defer func() {
		env.Single.Down()
		env.Three.Down()
	}()

	var modes []chaos.Mode
	for _, m := range strings.Split(modeList, ",") {
		if !slices.Contains(chaos.Modes, chaos.Mode(m)) {
			return fmt.Errorf("-modes: unknown mode %q: use at-least-once or exactly_once", m)
		}
		modes = append(modes, chaos.Mode(m))
	}
	keys := strings.Split(only, ",")
	var results []chaos.Result
	failed := false
	var stopped error
	// The scenarios on one node first, then those of the 3-node cluster,
	// so each cluster starts once; the table keeps the suite's order.
	all := chaos.Scenarios(size)
	order := map[string]int{}
	var scns []chaos.Scenario
	for i, scn := range all {
		order[scn.Key] = i
		if slices.Contains(keys, scn.Key) {
			scns = append(scns, scn)
		}
	}
	slices.SortStableFunc(scns, func(x, y chaos.Scenario) int { return cmp.Compare(x.Nodes, y.Nodes) })
	for _, scn := range scns {
		if scn.Nodes >= 3 && env.Single != nil {
			// Two cores: the 3-node cluster runs alone.
			env.Single.Down()
			env.Single = nil
		}
		for _, mode := range modes {
			res, err := chaos.RunScenario(ctx, env, scn, mode)
			if err != nil {
				res.Notes = append(res.Notes, "the run failed: "+err.Error())
				failed = true
				fmt.Fprintf(os.Stderr, "chaos: (%s) %s: %v\n", scn.Key, mode, err)
			}
			fmt.Println(res.Line())
			results = append(results, res)
			if ctx.Err() != nil {
				// Write what ran, saying where it stopped.
				res.Notes = append(res.Notes, fmt.Sprintf("the suite stopped here (%v); the scenarios after it did not run", ctx.Err()))
				results[len(results)-1] = res
				stopped = fmt.Errorf("stopped after (%s) %s: %w", scn.Key, mode, ctx.Err())
				break
			}
		}
		if stopped != nil {
			break
		}
	}
	slices.SortStableFunc(results, func(x, y chaos.Result) int { return cmp.Compare(order[x.Scenario], order[y.Scenario]) })
	took := time.Since(started)
	if out != "" {
		md := chaos.Markdown(results, bench.ReadMachine().String(), strings.TrimSpace(string(commit)), started, took)
		if !filepath.IsAbs(out) {
			out = filepath.Join(root, out)
		}
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "chaos: wrote %s (took %s)\n", out, took.Round(time.Second))
	}
	if stopped != nil {
		return stopped
	}
	if failed {
		return fmt.Errorf("a scenario could not run; the lines above say which")
	}
	if !keep {
		os.RemoveAll(dir)
	}
	return nil
}
