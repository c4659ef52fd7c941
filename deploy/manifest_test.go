package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// object is the part of a Kubernetes object the tests read; the decoder
// ignores the rest.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"` // ConfigMap
	Spec struct {
		// Service
		ClusterIP string `yaml:"clusterIP"`
		// A Service's labels, or a StatefulSet's {matchLabels: labels}.
		Selector map[string]any `yaml:"selector"`
		Ports    []servicePort  `yaml:"ports"`
		// StatefulSet, Deployment
		ServiceName string `yaml:"serviceName"`
		Replicas    *int   `yaml:"replicas"`
		Template    struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type servicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort any    `yaml:"targetPort"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot *bool   `yaml:"runAsNonRoot"`
		RunAsUser    *uint32 `yaml:"runAsUser"`
		RunAsGroup   *uint32 `yaml:"runAsGroup"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

type manifest []object

// readManifest decodes every document of deploy/k8s/name, strictly as YAML.
func readManifest(t *testing.T, name string) manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("k8s", name))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("deploy/k8s/%s: document %d: %v", name, len(m)+1, err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("deploy/k8s/%s: document %d has no apiVersion, kind or metadata.name", name, len(m)+1)
		}
		m = append(m, o)
	}
	return m
}

// only returns the manifest's one object of kind.
func (m manifest) only(t *testing.T, kind string) object {
	t.Helper()
	var found []object
	for _, o := range m {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("the manifest has %d objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

// TestRelayManifest: deploy/k8s/relay.yaml runs `kretry relay` from the
// image as its non-root user, with its config from the ConfigMap, its
// instance id from the pod name, a read-only root file system, and probes
// on the --metrics port at the relay's /healthz and /readyz, which the
// Service exposes for scraping.
func TestRelayManifest(t *testing.T) {
	m := readManifest(t, "relay.yaml")
	cm, svc, sts := m.only(t, "ConfigMap"), m.only(t, "Service"), m.only(t, "StatefulSet")
	d := readDockerfile(t)
	uid, gid := uidGID(t, d.user)

	pod := sts.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("StatefulSet: %d containers, want the relay's", len(pod.Containers))
	}
	c := pod.Containers[0]

	// The command line: kretry relay -c FILE --metrics :PORT.
	if len(c.Args) == 0 || c.Args[0] != "relay" {
		t.Fatalf("container args %v: want `relay` first (the image's ENTRYPOINT is kretry)", c.Args)
	}
	flag := func(name string) string {
		i := slices.Index(c.Args, name)
		if i < 0 || i+1 >= len(c.Args) {
			t.Fatalf("container args %v: no %s VALUE", c.Args, name)
		}
		return c.Args[i+1]
	}
	cfgFile := flag("-c")
	_, metricsPort, ok := strings.Cut(flag("--metrics"), ":")
	if !ok {
		t.Fatalf("--metrics %s: want :PORT, listening on the pod's address", flag("--metrics"))
	}

	// The config file comes from the ConfigMap.
	mounted := false
	for _, vm := range c.VolumeMounts {
		if filepath.Dir(cfgFile) != vm.MountPath {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("-c %s is not in a volume of the ConfigMap %s", cfgFile, cm.Metadata.Name)
	}
	if _, ok := cm.Data[filepath.Base(cfgFile)]; !ok {
		t.Errorf("the ConfigMap %s has no key %s, the file -c reads", cm.Metadata.Name, filepath.Base(cfgFile))
	}

	// The metrics port, by name and number.
	portName := ""
	for _, p := range c.Ports {
		if strconv.Itoa(p.ContainerPort) == metricsPort {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Fatalf("container ports %+v: none is the --metrics port %s", c.Ports, metricsPort)
	}
	samePort := func(what string, port any) {
		t.Helper()
		switch p := port.(type) {
		case string:
			if p != portName {
				t.Errorf("%s: port %q, want %q (the --metrics port)", what, p, portName)
			}
		case uint64, int64, int:
			if s := strings.TrimSpace(yamlString(p)); s != metricsPort {
				t.Errorf("%s: port %s, want %s (the --metrics port)", what, s, metricsPort)
			}
		default:
			t.Errorf("%s: port %v (%T): want the --metrics port", what, port, port)
		}
	}

	// The probes, at the paths kretry relay serves on the metrics address.
	for _, p := range []struct {
		what  string
		probe *probe
		path  string
	}{
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe on %s", p.what, p.path)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: path %s, want %s", p.what, p.probe.HTTPGet.Path, p.path)
		}
		samePort(p.what, p.probe.HTTPGet.Port)
	}

	// The instance id is the pod's name.
	fromPod := false
	for _, e := range c.Env {
		if e.Name == "KRETRY_INSTANCE_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			fromPod = true
		}
	}
	if !fromPod {
		t.Error("env: want KRETRY_INSTANCE_ID from fieldRef metadata.name")
	}

	// Non-root, as the image's USER, read-only root file system.
	sc := pod.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("pod securityContext: want runAsNonRoot: true")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != uid || sc.RunAsGroup == nil || *sc.RunAsGroup != gid {
		t.Errorf("pod securityContext: runAsUser/runAsGroup want %d/%d, the Dockerfile's USER", uid, gid)
	}
	if p := c.SecurityContext.ReadOnlyRootFilesystem; p == nil || !*p {
		t.Error("container securityContext: want readOnlyRootFilesystem: true")
	}
	if p := c.SecurityContext.AllowPrivilegeEscalation; p == nil || *p {
		t.Error("container securityContext: want allowPrivilegeEscalation: false")
	}
	if c.Resources.Requests["memory"] == "" || c.Resources.Requests["cpu"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}

	// The StatefulSet, its selector and its governing, scraped Service.
	if sts.Spec.ServiceName != svc.Metadata.Name {
		t.Errorf("StatefulSet serviceName %q, want the Service %q", sts.Spec.ServiceName, svc.Metadata.Name)
	}
	labels := sts.Spec.Template.Metadata.Labels
	match, _ := sts.Spec.Selector["matchLabels"].(map[string]any)
	if len(match) == 0 {
		t.Error("StatefulSet: no selector.matchLabels")
	}
	for k, v := range match {
		if labels[k] != v {
			t.Errorf("StatefulSet selector %s=%s does not match the pod labels %v", k, v, labels)
		}
	}
	if len(svc.Spec.Selector) == 0 {
		t.Error("Service: no selector")
	}
	for k, v := range svc.Spec.Selector {
		if labels[k] != v {
			t.Errorf("Service selector %s=%v does not match the pod labels %v", k, v, labels)
		}
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("Service ports %+v: want the metrics port", svc.Spec.Ports)
	}
	samePort("Service targetPort", svc.Spec.Ports[0].TargetPort)
}

func yamlString(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}
