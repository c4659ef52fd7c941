package deploy_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/kafkatest"
)

// TestImageRelayAnswersTheManifestProbes runs the container's command as
// deploy/k8s/relay.yaml gives it (the image's binary, as its uid, the
// StatefulSet's args and env, the ConfigMap's kretry.yaml) against an
// in-process broker with the config's topics, and GETs the liveness and
// readiness probes' paths on its --metrics address until both answer 200;
// then stops it with SIGTERM, as Kubernetes does, and expects it to exit 0
// within the pod's terminationGracePeriodSeconds.
func TestImageRelayAnswersTheManifestProbes(t *testing.T) {
	d := readDockerfile(t)
	uid, gid := uidGID(t, d.user)
	bin := buildImageBinary(t)
	if os.Geteuid() != 0 && uint32(os.Geteuid()) != uid {
		t.Skipf("running as uid %d: only root can start a process as the image's uid %d", os.Geteuid(), uid)
	}
	m := readManifest(t, "relay.yaml")
	cm, sts := m.only(t, "ConfigMap"), m.only(t, "StatefulSet")
	c := sts.Spec.Template.Spec.Containers[0]
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
		t.Fatal("the relay container has no HTTP liveness or readiness probe")
	}

	// The config's topics on a broker of the test's own.
	data := []byte(cm.Data["kretry.yaml"])
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatalf("the ConfigMap's kretry.yaml: %v", err)
	}
	ladders, err := cfg.Ladders()
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, l := range ladders {
		topics = append(topics, l.Topic(), l.DLQ())
		for _, s := range l.Steps() {
			topics = append(topics, s.Topic)
		}
	}
	_, brokers := kafkatest.Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(2, topics...))

	cfgPath := filepath.Join(filepath.Dir(bin), "relay-kretry.yaml")
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(c.Args)
	args[slices.Index(args, "-c")+1] = cfgPath
	args[slices.Index(args, "--metrics")+1] = "127.0.0.1:0" // the test listens on 127.0.0.1 only
	var stderr kafkatest.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"KRETRY_BROKERS=" + strings.Join(brokers, ","), "KRETRY_INSTANCE_ID=" + sts.Metadata.Name + "-0"}
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	var base string
	kafkatest.WaitFor(t, "the relay's metrics address in its log", 50*time.Millisecond, time.Minute, func() bool {
		for line := range strings.SplitSeq(stderr.String(), "\n") {
			var entry struct{ Msg, URL string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving metrics" {
				base = strings.TrimSuffix(entry.URL, "/metrics")
			}
		}
		return base != ""
	})
	for _, path := range []string{c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path} {
		var code int
		kafkatest.WaitFor(t, "200 on "+path, 100*time.Millisecond, time.Minute, func() bool {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatalf("GET %s: %v\n%s", path, err, stderr.String())
			}
			resp.Body.Close()
			code = resp.StatusCode
			return code == http.StatusOK
		})
	}

	grace := 30 * time.Second // Kubernetes' default
	if sts.Spec.Template.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*sts.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("kretry relay after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(grace):
		t.Fatalf("kretry relay still runs %s after SIGTERM, the pod's terminationGracePeriodSeconds: Kubernetes would kill it\n%s", grace, stderr.String())
	}
	if !strings.Contains(stderr.String(), "kretry relay stopped") {
		t.Errorf("kretry relay did not log its graceful stop:\n%s", stderr.String())
	}
}
