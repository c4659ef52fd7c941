package config_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kretry/kretry/config"
)

const validTail = "brokers: [\"127.0.0.1:9092\"]\ngroup: g\ntopics: [{name: t, tiers: [{delay: 1s}]}]\n"

// allocated returns the bytes f allocates; it is not a timing and does not
// depend on the machine's load.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileFiles are the reproductions of issue 14: files that ran out of
// memory, ran for minutes or were accepted are refused with a clear error,
// allocating far less than 64 MiB.
func TestHostileFiles(t *testing.T) {
	lines := func(n int, f func(i int) string) []byte {
		var b bytes.Buffer
		for i := range n {
			b.WriteString(f(i))
		}
		return b.Bytes()
	}
	cases := []struct {
		name string
		data []byte
		want string // the whole error; "" for none
	}{
		{"brackets nested 100,000 deep (200 KB)",
			[]byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n"),
			"line 1: a line of 195 KiB, longer than the 16 KiB a line may have: break it into lines (a [list] or {mapping} may span lines)"},
		{"brackets nested 100,000 deep over lines",
			lines(1000, func(int) string { return strings.Repeat("[", 100) + "\n" }),
			`line 21: more than 2000 "[" and "{": a kretry config needs far fewer; is it the right file?`},
		{"brackets nested 40 deep",
			[]byte(strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n"),
			"line 1: nested more than 32 levels deep: a kretry config needs 5; check the brackets and the indentation"},
		{"brackets in quotes and comments are not counted",
			append([]byte(validTail+"client_id: \""+strings.Repeat("[", 3000)+"\"\n"), lines(30, func(int) string { return "# " + strings.Repeat("[,", 1000) + "\n" })...),
			""},
		{"100,000 list entries on one line",
			[]byte(strings.Repeat("- ", 100000) + "x\n"),
			"line 1: a line of 195 KiB, longer than the 16 KiB a line may have: break it into lines (a [list] or {mapping} may span lines)"},
		{"100,000 unknown keys (1 MB)",
			lines(100000, func(i int) string { return fmt.Sprintf("k%d: 1\n", i) }),
			"the file is 966 KiB, more than the 256 KiB a kretry config may have: is it the right file?"},
		{"20,000 unknown keys (200 KB)",
			lines(20000, func(i int) string { return fmt.Sprintf("k%d: 1\n", i) }),
			"line 2001: too many keys: a kretry config has at most 2000; is it the right file?"},
		{"2,500 keys in one flow mapping",
			append(append([]byte("{\n"), lines(2500, func(i int) string { return fmt.Sprintf("k%d: 1,\n", i) })...), '}'),
			"line 2002: too many keys: a kretry config has at most 2000; is it the right file?"},
		{"20,000 values in a flow list",
			append(append([]byte("brokers: [\n"), lines(20000, func(int) string { return "1,\n" })...), ']'),
			`line 10002: more than 10000 ",": a kretry config needs far fewer; is it the right file?`},
		{"a block list of 12,000 values",
			append([]byte("brokers:\n"), lines(12000, func(int) string { return "- 1\n" })...),
			"line 5001: too many values: a kretry config has at most 10000 keys, values and list entries; is it the right file?"},
		{"a 50 MB client_id",
			[]byte(validTail + "client_id: " + strings.Repeat("x", 50_000_000) + "\n"),
			"the file is 48 MiB, more than the 256 KiB a kretry config may have: is it the right file?"},
		{"a 5000-byte client_id",
			[]byte(validTail + "client_id: " + strings.Repeat("x", 5000) + "\n"),
			"line 4: a value of 4.9 KiB: keys and values are at most 4096 bytes"},
		{"a 5000-byte key",
			[]byte(validTail + strings.Repeat("k", 5000) + ": 1\n"),
			"line 4: a value of 4.9 KiB: keys and values are at most 4096 bytes"},
		{"every topic's tiers an alias of 800 tiers (took 1.8s)",
			append(append(append([]byte("brokers: [\"a:1\"]\ngroup: g\nladder: &t\n"),
				lines(800, func(i int) string { return fmt.Sprintf("  - {delay: %dms}\n", i+1) })...), "topics:\n"...),
				lines(400, func(i int) string { return fmt.Sprintf("  - {name: t%d, tiers: *t}\n", i) })...),
			"with its aliases (*name) expanded the file has more than 20000 values: write the values out, or use fewer aliases"},
		{"mappings indented 40 deep",
			lines(40, func(i int) string { return strings.Repeat(" ", i) + "a:\n" }),
			"line 33: nested more than 32 levels deep: a kretry config needs 5; check the brackets and the indentation"},
		{"list entries nested 40 deep on one line",
			[]byte(strings.Repeat("- ", 40) + "x\n"),
			"line 1: nested more than 32 levels deep: a kretry config needs 5; check the brackets and the indentation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			var err error
			n := allocated(func() { _, err = config.Parse(tc.data) })
			if n > 64<<20 {
				t.Errorf("Parse allocated %d MiB, want at most 64 MiB", n>>20)
			}
			t.Logf("Parse allocated %d KiB", n>>10)
			if tc.want == "" {
				if err != nil {
					t.Errorf("Parse: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

// TestErrorsCapped: a file with thousands of problems lists the first 50.
func TestErrorsCapped(t *testing.T) {
	clearEnv(t)
	var b strings.Builder
	b.WriteString(validTail)
	for i := range 1900 {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	_, err := config.Parse([]byte(b.String()))
	if err == nil {
		t.Fatal("Parse accepted 1900 unknown keys")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 51 || lines[50] != "and 1850 more problems: fix these first" || !strings.HasPrefix(lines[0], "line 4: k0: unknown key") {
		t.Errorf("%d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
	}
}

// TestLoadBoundsTheRead: Load reads no more than MaxFileSize+1 bytes of a
// huge file, and refuses what is not a regular file (/dev/zero ran out of
// memory).
func TestLoadBoundsTheRead(t *testing.T) {
	clearEnv(t)
	big := filepath.Join(t.TempDir(), "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(validTail + "client_id: "); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(50 << 20); err != nil { // 50 MiB, sparse
		t.Fatal(err)
	}
	f.Close()
	cases := []struct{ path, want string }{
		{big, big + ": the config file is larger than 256 KiB: give the kretry.yaml file"},
		{"/dev/zero", "/dev/zero: the config file is not a regular file (it is a device): give the kretry.yaml file"},
		{t.TempDir(), "is not a regular file (it is a directory)"},
	}
	for _, tc := range cases {
		var err error
		if n := allocated(func() { _, err = config.Load(tc.path) }); n > 4<<20 {
			t.Errorf("Load(%s) allocated %d KiB, want at most 4 MiB", tc.path, n>>10)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s): %v, want %q", tc.path, err, tc.want)
		}
	}
}

func TestUTF8BOM(t *testing.T) {
	clearEnv(t)
	data := append([]byte("\uFEFF"), validTail...)
	c, err := config.Parse(data)
	if err != nil {
		t.Fatalf("Parse of a file that starts with a BOM: %v", err)
	}
	if len(c.Brokers) != 1 || c.Brokers[0] != "127.0.0.1:9092" {
		t.Errorf("brokers %q", c.Brokers)
	}
	path := filepath.Join(t.TempDir(), "kretry.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Errorf("Load of a file that starts with a BOM: %v", err)
	}
}

func TestCheckBroker(t *testing.T) {
	const rule = `must be a broker address "host:port" with a port from 1 to 65535, e.g. "127.0.0.1:9092"`
	cases := []struct{ addr, want string }{
		{"127.0.0.1:9092", ""},
		{"kafka-1:9093", ""},
		{"kafka-0.kafka.svc.cluster.local:9092", ""},
		{"broker_1:1", ""},
		{"[::1]:65535", ""},
		{"localhost", rule + `: the port is missing, got "localhost"`},
		{"127.0.0.1:99999", rule + `: the port is not in 1-65535, got "127.0.0.1:99999"`},
		{"127.0.0.1:0", rule + `: the port is not in 1-65535, got "127.0.0.1:0"`},
		{"127.0.0.1:+9", rule + `: the port is not in 1-65535, got "127.0.0.1:+9"`},
		{"http://x:1", rule + `: no scheme (http://), got "http://x:1"`},
		{":9092", rule + `: the host is missing, got ":9092"`},
		{"::1:9092", rule + `, got "::1:9092"`},
		{"a b:9092", rule + `, got "a b:9092"`},
		{"a..b:9092", rule + `, got "a..b:9092"`},
		{"x\x1b[2J:9092", rule + `, got "x\x1b[2J:9092"`},
	}
	for _, tc := range cases {
		err := config.CheckBroker(tc.addr)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckBroker(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestBrokerAddressErrors(t *testing.T) {
	const rule = `must be a broker address "host:port" with a port from 1 to 65535, e.g. "127.0.0.1:9092"`
	clearEnv(t)
	t.Run("env", func(t *testing.T) {
		t.Setenv(config.EnvBrokers, "good:9092,localhost")
		_, err := config.Parse([]byte("group: g\ntopics: [{name: t, tiers: [{delay: 1s}]}]\n"))
		if want := "KRETRY_BROKERS: " + rule + `: the port is missing, got "localhost"`; err == nil || err.Error() != want {
			t.Errorf("error:\n%v\nwant:\n%s", err, want)
		}
	})
	t.Run("WithBrokers", func(t *testing.T) {
		_, err := config.Parse([]byte("group: g\ntopics: [{name: t, tiers: [{delay: 1s}]}]\n"), config.WithBrokers("http://x:1"))
		if want := "brokers given with WithBrokers (--brokers): " + rule + `: no scheme (http://), got "http://x:1"`; err == nil || err.Error() != want {
			t.Errorf("error:\n%v\nwant:\n%s", err, want)
		}
	})
}

// TestSyntaxErrorsInWords: a YAML syntax error says what is wrong and
// where, not only the YAML library's words.
func TestSyntaxErrorsInWords(t *testing.T) {
	head := "brokers: [\"127.0.0.1:9092\"]\ngroup: g\n"
	cases := []struct{ name, yaml, want string }{
		{"tiers indented under name", head + "topics:\n  - name: orders\n      tiers:\n        - delay: 5s\n",
			"line 5: tiers is indented deeper than name (line 4, column 5), so YAML reads it as part of the value of name: put tiers in the same column as name (YAML: mapping value is not allowed in this context)"},
		{"tiers at the column of the list entry", head + "topics:\n  - name: orders\n  tiers:\n    - delay: 5s\n",
			"line 5: key tiers (column 3) is indented less deep than name (line 4, column 5) and lines up with no mapping above it: keys of one mapping start in the same column; indent tiers like the keys it belongs with (YAML: value is not allowed in this context)"},
		{"a top-level key indented", "brokers: [\"127.0.0.1:9092\"]\n group: g\n",
			"line 2: key group (column 2) is indented deeper than brokers (line 1, column 1) and lines up with no mapping above it: keys of one mapping start in the same column; indent group like the keys it belongs with (YAML: value is not allowed in this context)"},
		{"a value with a colon", head + "client_id: a: b\n",
			`line 3: the value of client_id holds ": ": quote the value, or put a key on a line of its own (YAML: mapping value is not allowed in this context)`},
		{"a list not closed", "brokers: [\"127.0.0.1:9092\"\ngroup: g\n",
			`line 2: the "[" opened on line 1 is not closed before this line: close it, or separate its items with "," (YAML: ',' or ']' must be specified)`},
		{"a quote not closed", head + "client_id: \"abc\ntopics: x\n",
			`line 3: a value opens a "..." quote that is never closed: close it, or escape a " inside it as \" (YAML: could not find end character of double-quoted text)`},
		{"a tab", head + "\ttopics: x\n",
			`line 3: a tab: YAML indents with spaces only; replace the tabs with spaces (YAML: found character '\t' that cannot start any token)`},
		{"a key twice", head + "group: h\n",
			`line 3: key group is given twice in one mapping (first on line 2): keep one (YAML: mapping key "group" already defined at [2:1])`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			_, err := config.Parse([]byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

// TestBadBytesNotEchoed: keys and values of a bad file reach the error
// quoted, with control characters escaped, and cut.
func TestBadBytesNotEchoed(t *testing.T) {
	clearEnv(t)
	esc := `\e[2J\e[31m\r\0` // YAML escapes: the values hold ESC, CR and NUL
	raw := "\x1b[2J\x1b[31m\r\x00"
	long := strings.Repeat("z", 3000)
	files := []string{
		"brokers: [\"x" + esc + ":1\", \"" + long + "\"]\ngroup: g\ntopics: [{name: \"t" + esc + "\", tiers: [{delay: \"5" + esc + "\"}], dlq: \"" + esc + "{x" + esc + "}\"}]\n" +
			"\"" + esc + "\": 1\n" + long + ": 2\nclient_id: \"\"\nsession_timeout: \"" + esc + "\"\ngroup_protocol: \"" + esc + long + "\"\n" +
			"relay: {hold_bytes: \"" + esc + "\", group: g}\nsasl: {mechanism: \"" + esc + "\", username: \"" + esc + "\", password_env: X}\n",
		"brokers: [\"127.0.0.1:9092\"]\ngroup: g\ntopics: [{name: t, tiers: [{delay: 5s}]}]\nclient_id: x" + raw + ": y\n",
		"brokers: [\"127.0.0.1:9092\"]\ngroup: g\n" + raw + "\x01\x02: [\n",
		"brokers: [\"127.0.0.1:9092\"]\ngroup: g\ntopics: [{name: t, tiers: [{delay: 5s}]}]\nclient_id: \"" + raw + "\n",
	}
	for i, f := range files {
		_, err := config.Parse([]byte(f))
		if err == nil {
			t.Fatalf("file %d parsed", i)
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			for _, r := range line {
				if r < 0x20 || r == 0x7f {
					t.Errorf("file %d: control character %q in error line %q", i, r, line)
					break
				}
			}
			if len(line) > 600 {
				t.Errorf("file %d: error line of %d bytes: %.200s…", i, len(line), line)
			}
		}
		if testing.Verbose() {
			t.Logf("file %d:\n%v", i, err)
		}
	}
}

func TestTLSFilesBounded(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, bytes.Repeat([]byte("A"), 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tls  config.TLS
		want string
	}{
		{config.TLS{CAFile: "/dev/zero"}, "tls.ca_file: /dev/zero is not a regular file (it is a device): give a readable PEM file of the CA certificates"},
		{config.TLS{CAFile: big}, "tls.ca_file: " + big + " is larger than 1.0 MiB: give a readable PEM file of the CA certificates"},
		{config.TLS{CAFile: dir}, "tls.ca_file: " + dir + " is not a regular file (it is a directory): give a readable PEM file of the CA certificates"},
		{config.TLS{CertFile: "/dev/zero", KeyFile: "/dev/zero"}, "tls.cert_file: /dev/zero is not a regular file (it is a device): give a readable PEM file of the client certificate\n" +
			"tls.key_file: /dev/zero is not a regular file (it is a device): give a readable PEM file of the client certificate's key"},
	}
	for _, tc := range cases {
		c := &config.Config{Brokers: []string{"127.0.0.1:9092"}, TLS: &tc.tls}
		var err error
		if n := allocated(func() { _, err = c.ClientOpts() }); n > 8<<20 {
			t.Errorf("%+v: ClientOpts allocated %d MiB", tc.tls, n>>20)
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("error:\n%v\nwant:\n%s", err, tc.want)
		}
	}
}

// FuzzParse: no input makes Parse panic, and an accepted config resolves
// its ladders; every error is printable.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		files, _ := filepath.Glob(filepath.Join("..", "testdata", "config", dir, "*.yaml"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(validTail + "exactly_once: true\ninstance_id: a\nsession_timeout: 6s\n"))
	f.Add([]byte("a: &x [*x, *x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		t.Setenv(config.EnvBrokers, "")
		t.Setenv(config.EnvGroup, "")
		t.Setenv(config.EnvInstanceID, "")
		c, err := config.Parse(data)
		if err != nil {
			for _, r := range err.Error() {
				if r != '\n' && (r < 0x20 || r == 0x7f) {
					t.Fatalf("control character %q in error %q", r, err)
				}
			}
			return
		}
		if _, err := c.Ladders(); err != nil {
			t.Fatalf("Parse accepted a config whose ladders fail: %v", err)
		}
		for _, b := range c.Brokers {
			if err := config.CheckBroker(b); err != nil {
				t.Fatalf("Parse accepted broker %q: %v", b, err)
			}
		}
	})
}
