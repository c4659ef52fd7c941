package deploy_test

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/goccy/go-yaml"
)

// dockerfile is what the tests read from ../Dockerfile.
type dockerfile struct {
	froms      []string // the image of each FROM, in order
	buildEnv   []string // NAME=value before `go build` in the build stage's RUN
	buildArgs  []string // go build's arguments, -o included
	output     string   // go build's -o
	copyTo     string   // where the final stage copies the binary
	user       string   // the final USER, uid:gid
	entrypoint []string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var d dockerfile
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			d.froms = append(d.froms, strings.Fields(rest)[0])
		case "RUN":
			words := shellWords(t, rest)
			i := slices.Index(words, "go")
			if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
				continue
			}
			d.buildEnv, d.buildArgs = words[:i], words[i+2:]
			if j := slices.Index(d.buildArgs, "-o"); j >= 0 && j+1 < len(d.buildArgs) {
				d.output = d.buildArgs[j+1]
			}
		case "COPY":
			if f := strings.Fields(rest); len(f) == 3 && strings.HasPrefix(f[0], "--from=") {
				if f[1] != d.output {
					t.Fatalf("Dockerfile: COPY %s: the build stage writes %s", rest, d.output)
				}
				d.copyTo = f[2]
			}
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			if err := yaml.Unmarshal([]byte(rest), &d.entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT %s: want the exec form, a JSON array: %v", rest, err)
			}
		}
	}
	if d.buildArgs == nil || d.output == "" || d.copyTo == "" {
		t.Fatalf("Dockerfile: no `RUN ... go build -o OUT` whose OUT a COPY --from takes: %+v", d)
	}
	return d
}

// shellWords splits a RUN line as sh would for what the Dockerfile uses:
// words, and double-quoted parts within a word.
func shellWords(t *testing.T, s string) []string {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case strings.ContainsRune(`\$'&|;`, r) && !quoted:
			t.Fatalf("Dockerfile: RUN %s: %q is more shell than this test reads: teach shellWords", s, r)
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// uidGID parses USER uid:gid; a name would need the image's /etc/passwd,
// which Kubernetes' runAsNonRoot cannot read.
func uidGID(t *testing.T, user string) (uid, gid uint32) {
	t.Helper()
	u, g, ok := strings.Cut(user, ":")
	un, err1 := strconv.ParseUint(u, 10, 32)
	gn, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("Dockerfile: USER %q: want numbers uid:gid, e.g. 65532:65532", user)
	}
	return uint32(un), uint32(gn)
}

func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	if len(d.froms) < 2 {
		t.Fatalf("Dockerfile: %d stages (%v): want a build stage and a final one", len(d.froms), d.froms)
	}
	final := d.froms[len(d.froms)-1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("Dockerfile: final image %s: want distroless static or scratch (no shell, no libc)", final)
	}
	if !slices.Contains(d.buildEnv, "CGO_ENABLED=0") {
		t.Errorf("Dockerfile: go build runs with %v: want CGO_ENABLED=0, a static binary", d.buildEnv)
	}
	if uid, _ := uidGID(t, d.user); uid == 0 {
		t.Errorf("Dockerfile: USER %s is root", d.user)
	}
	if !slices.Equal(d.entrypoint, []string{d.copyTo}) {
		t.Errorf("Dockerfile: ENTRYPOINT %v: want [%q], the binary the final stage copies", d.entrypoint, d.copyTo)
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildImageBinary builds kretry as the Dockerfile's build stage does, into
// a directory every user may read, once per test binary.
func buildImageBinary(t *testing.T) string {
	t.Helper()
	d := readDockerfile(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kretry-image-")
		if err != nil {
			buildErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kretry")
		args := slices.Clone(d.buildArgs)
		args[slices.Index(args, "-o")+1] = binPath
		cmd := exec.Command("go", append([]string{"build"}, args...)...)
		cmd.Dir = ".." // the Dockerfile's WORKDIR holds the repository
		cmd.Env = append(os.Environ(), d.buildEnv...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build " + strings.Join(args, " ") + ": " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// TestImageBinaryIsStatic: built with the Dockerfile's flags, kretry has no
// ELF interpreter and needs no shared library, so it runs on distroless
// static (no libc); the go command recorded CGO_ENABLED=0.
func TestImageBinaryIsStatic(t *testing.T) {
	bin := buildImageBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(p.Open())
			t.Errorf("the binary asks for the interpreter %s: it is dynamically linked", bytes.TrimRight(interp, "\x00"))
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("the binary has a dynamic section")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("the binary needs the shared libraries %v", libs)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" {
		t.Errorf("go version -m: CGO_ENABLED=%q, want 0", settings["CGO_ENABLED"])
	}
	if info.Path != "github.com/kretry/kretry/cmd/kretry" {
		t.Errorf("go version -m: path %s, want github.com/kretry/kretry/cmd/kretry", info.Path)
	}
}

// TestImageRunsAsNonRoot runs the binary as the image's USER, from /, with
// no HOME and nothing writable, as the pod of deploy/k8s/relay.yaml does:
// `kretry version`, and `kretry config check` of the ConfigMap's kretry.yaml
// with KRETRY_INSTANCE_ID set to a pod name of the StatefulSet.
func TestImageRunsAsNonRoot(t *testing.T) {
	d := readDockerfile(t)
	uid, gid := uidGID(t, d.user)
	bin := buildImageBinary(t)
	if os.Geteuid() != 0 && uint32(os.Geteuid()) != uid {
		t.Skipf("running as uid %d: only root can start a process as the image's uid %d", os.Geteuid(), uid)
	}
	m := readManifest(t, "relay.yaml")
	cm := m.only(t, "ConfigMap")
	cfgPath := filepath.Join(filepath.Dir(bin), "kretry.yaml")
	if err := os.WriteFile(cfgPath, []byte(cm.Data["kretry.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = "/"
		cmd.Env = []string{"KRETRY_INSTANCE_ID=" + m.only(t, "StatefulSet").Metadata.Name + "-0"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kretry %s as uid %d: %v\n%s", strings.Join(args, " "), uid, err, out)
		}
		return string(out)
	}
	if out := run("version"); !strings.HasPrefix(out, "kretry ") {
		t.Errorf("kretry version as uid %d printed %q", uid, out)
	}
	out := run("config", "check", "-c", cfgPath, "--json")
	if !strings.Contains(out, `"ok":true`) || !strings.Contains(out, `"instance_id":"kretry-relay-0"`) {
		t.Errorf("kretry config check of the ConfigMap's kretry.yaml as uid %d:\n%s", uid, out)
	}
}
