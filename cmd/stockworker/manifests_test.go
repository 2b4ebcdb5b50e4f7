package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stockflow/stockflow/worker"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The Kubernetes manifests (deploy/k8s) are tested here, without a cluster,
// against the code they configure: every overlay renders with kustomize's Go
// API, every object decodes strictly into its API type, the KEDA objects
// validate against KEDA's CRD schemas, and what the manifests give the worker
// — environment names and values, the files its *_FILE settings name, probe
// paths and ports, the termination grace, the replica bounds — is checked
// against parseConfig and httpHandler rather than against a copied list.
// Overlays are found by listing deploy/k8s/overlays, so a new one is tested
// without touching this file. The secrets' checks are in
// manifests_secrets_test.go.

const (
	k8sDir = "../../deploy/k8s"
	// The ScaledObject is written for KEDA 2.x; its schema comes from this
	// release's module (config/crd/bases), fetched through the Go module cache.
	kedaModule  = "github.com/kedacore/keda/v2"
	kedaVersion = "v2.21.0"
	kedaCRDs    = "config/crd/bases"
	// shutdownMargin is what a pod still needs after the drain bound
	// SHUTDOWN_GRACE: publishing and committing what was settled, leaving the
	// group, and stopping the HTTP server (up to 5 s).
	shutdownMargin = 15 * time.Second
)

// manifests is one rendered overlay, decoded into API types.
type manifests struct {
	overlay         string
	deployments     []*appsv1.Deployment
	jobs            []*batchv1.Job
	services        []*corev1.Service
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	scaledObjects   []*scaledObject
	triggerAuths    []*triggerAuthentication
	serviceAccounts []*corev1.ServiceAccount
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	// templates are base/secret-template.yaml's Secrets, by name: what an
	// operator creates by hand where no overlay renders them.
	templates map[string]*corev1.Secret
}

// scaledObject holds the fields of a KEDA ScaledObject the checks read; its
// full shape is checked by the CRD schema (TestManifestsMatchKEDASchemas).
type scaledObject struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind"`
			} `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
	raw []byte // the rendered object, for the schema
}

// triggerAuthentication holds the fields of a KEDA TriggerAuthentication the
// checks read: where each parameter comes from. The CRD schema checks the
// rest (TestManifestsMatchKEDASchemas).
type triggerAuthentication struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		Env []struct {
			Parameter     string `json:"parameter"`
			Name          string `json:"name"`
			ContainerName string `json:"containerName"`
		} `json:"env"`
		SecretTargetRef    []targetRef `json:"secretTargetRef"`
		ConfigMapTargetRef []targetRef `json:"configMapTargetRef"`
	} `json:"spec"`
	raw []byte
}

// targetRef is a TriggerAuthentication parameter read from a key of a Secret
// or ConfigMap.
type targetRef struct {
	Parameter string `json:"parameter"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

func overlayNames(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(k8sDir, "overlays"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("no overlays in deploy/k8s/overlays")
	}
	return names
}

// forEachOverlay renders every overlay and runs check on it in a subtest.
func forEachOverlay(t *testing.T, check func(t *testing.T, m *manifests)) {
	t.Helper()
	templates := secretTemplates(t)
	for _, name := range overlayNames(t) {
		t.Run(name, func(t *testing.T) {
			m := render(t, name)
			m.templates = templates
			check(t, m)
		})
	}
}

// render builds an overlay as `kubectl apply -k` would (kustomize's own Go
// API, not the old copy inside kubectl) and decodes every object strictly.
func render(t *testing.T, overlay string) *manifests {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join(k8sDir, "overlays", overlay))
	if err != nil {
		t.Fatal(err)
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build overlays/%s: %v", overlay, err)
	}
	m := &manifests{overlay: overlay, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, r := range resMap.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%s %s/%s", r.GetApiVersion(), r.GetKind(), r.GetName())
		if err := m.add(r.GetApiVersion()+" "+r.GetKind(), raw); err != nil {
			t.Errorf("overlays/%s: %s: %v", overlay, id, err)
		}
	}
	return m
}

// add decodes one rendered object into its API type. A kind the manifests
// are not expected to hold fails, as does any field the type does not have.
func (m *manifests) add(gvk string, raw []byte) error {
	switch gvk {
	case "apps/v1 Deployment":
		return decodeInto(raw, &m.deployments)
	case "batch/v1 Job":
		return decodeInto(raw, &m.jobs)
	case "v1 Service":
		return decodeInto(raw, &m.services)
	case "policy/v1 PodDisruptionBudget":
		return decodeInto(raw, &m.pdbs)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return decodeInto(raw, &m.hpas)
	case "v1 ServiceAccount":
		return decodeInto(raw, &m.serviceAccounts)
	case "v1 ConfigMap":
		var cm corev1.ConfigMap
		if err := decodeStrict(raw, &cm); err != nil {
			return err
		}
		m.configMaps[cm.Name] = &cm
	case "v1 Secret":
		var s corev1.Secret
		if err := decodeStrict(raw, &s); err != nil {
			return err
		}
		m.secrets[s.Name] = &s
	case "keda.sh/v1alpha1 ScaledObject":
		if err := decodeKEDA(raw); err != nil {
			return err
		}
		so := &scaledObject{raw: raw}
		if err := json.Unmarshal(raw, so); err != nil {
			return err
		}
		m.scaledObjects = append(m.scaledObjects, so)
	case "keda.sh/v1alpha1 TriggerAuthentication":
		if err := decodeKEDA(raw); err != nil {
			return err
		}
		ta := &triggerAuthentication{raw: raw}
		if err := json.Unmarshal(raw, ta); err != nil {
			return err
		}
		m.triggerAuths = append(m.triggerAuths, ta)
	default:
		return fmt.Errorf("unexpected kind %q: add it to manifests.add with its API type", gvk)
	}
	return nil
}

// decodeKEDA is strict about a KEDA object's envelope and metadata; its spec
// is the CRD schema's to judge.
func decodeKEDA(raw []byte) error {
	var envelope struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
		Spec       json.RawMessage   `json:"spec"`
	}
	return decodeStrict(raw, &envelope)
}

func decodeInto[T any](raw []byte, list *[]*T) error {
	v := new(T)
	if err := decodeStrict(raw, v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// decodeStrict decodes like the API server's strict field validation: field
// names are case-sensitive, and unknown or duplicate fields are errors.
func decodeStrict(raw []byte, v any) error {
	strict, err := kjson.UnmarshalStrict(raw, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// secretTemplates reads base/secret-template.yaml: v1 Secrets, one per YAML
// document, decoded strictly, by name.
func secretTemplates(t *testing.T) map[string]*corev1.Secret {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(k8sDir, "base", "secret-template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.Secret{}
	for i, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(b), -1) {
		raw, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("base/secret-template.yaml, document %d: %v", i+1, err)
		}
		if string(raw) == "null" {
			continue // comments only
		}
		var s corev1.Secret
		if err := decodeStrict(raw, &s); err != nil {
			t.Fatalf("base/secret-template.yaml, document %d: %v", i+1, err)
		}
		if s.APIVersion != "v1" || s.Kind != "Secret" || s.Name == "" {
			t.Fatalf("base/secret-template.yaml, document %d is a %s %s %q, not a named v1 Secret", i+1, s.APIVersion, s.Kind, s.Name)
		}
		if out[s.Name] != nil {
			t.Fatalf("base/secret-template.yaml has two Secrets %s", s.Name)
		}
		out[s.Name] = &s
	}
	if len(out) == 0 {
		t.Fatal("base/secret-template.yaml holds no Secret")
	}
	return out
}

// secret finds a Secret the overlay renders, or else a template's, which
// operators create under its name.
func (m *manifests) secret(name string) *corev1.Secret {
	if s, ok := m.secrets[name]; ok {
		return s
	}
	return m.templates[name]
}

// fromTemplate reports whether the Secret name is a template's (filled in by
// an operator), not rendered by the overlay.
func (m *manifests) fromTemplate(name string) bool {
	_, rendered := m.secrets[name]
	return !rendered && m.templates[name] != nil
}

func secretValues(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// containerEnv is the environment a container starts with, built as the
// kubelet builds it: the envFrom sources in order, then the env entries,
// later ones winning. A reference to an object the overlay does not provide
// is an error.
func (m *manifests) containerEnv(c corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	var errs []error
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := m.configMaps[from.ConfigMapRef.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("envFrom ConfigMap %q is not rendered", from.ConfigMapRef.Name))
				continue
			}
			for k, v := range cm.Data {
				env[from.Prefix+k] = v
			}
		case from.SecretRef != nil:
			s := m.secret(from.SecretRef.Name)
			if s == nil {
				errs = append(errs, fmt.Errorf("envFrom Secret %q is neither rendered nor a template", from.SecretRef.Name))
				continue
			}
			for k, v := range secretValues(s) {
				env[from.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := m.configMaps[ref.Name]
			v, has := "", false
			if ok {
				v, has = cm.Data[ref.Key]
			}
			switch {
			case has:
				env[e.Name] = v
			case ref.Optional == nil || !*ref.Optional:
				errs = append(errs, fmt.Errorf("%s: ConfigMap %q has no key %q", e.Name, ref.Name, ref.Key))
			} // an optional key that is missing leaves the variable unset
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, has := "", false
			if s := m.secret(ref.Name); s != nil {
				v, has = secretValues(s)[ref.Key]
			}
			switch {
			case has:
				env[e.Name] = v
			case ref.Optional == nil || !*ref.Optional:
				errs = append(errs, fmt.Errorf("%s: Secret %q (rendered or a template) has no key %q", e.Name, ref.Name, ref.Key))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: a valueFrom the test does not resolve", e.Name))
		}
	}
	return env, errors.Join(errs...)
}

// workerContainer is the container that runs stockworker: the pod's first,
// as KEDA also assumes for its *FromEnv parameters.
func workerContainer(t *testing.T, what string, spec corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(spec.Containers) == 0 {
		t.Fatalf("%s has no container", what)
	}
	return spec.Containers[0]
}

// workerConfig is the configuration stockworker derives from a container's
// manifest: its environment and arguments through parseConfig, with the
// files its *_FILE settings name as the pod would have them
// (podFiles.materialize). Also returned: the environment, and those files.
func (m *manifests) workerConfig(t *testing.T, what string, spec corev1.PodSpec, c corev1.Container) (config, map[string]string, podFiles) {
	t.Helper()
	env, err := m.containerEnv(c)
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
	files, err := m.filesOf(spec, c, env)
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
	local := files.materialize(t, env)
	args := slices.Clone(c.Args)
	if len(args) > 0 && args[0] == "migrate" {
		args = args[1:]
	}
	if len(c.Command) > 0 {
		t.Errorf("%s: command %q replaces the image's entrypoint /stockworker; use args", what, c.Command)
	}
	cfg, err := parseConfig(args, func(k string) string { return local[k] }, io.Discard)
	if err != nil {
		t.Errorf("%s: stockworker refuses the configuration: %v", what, err)
	}
	return cfg, env, files
}

// envNamesRead is the set of environment variables stockworker reads, taken
// from the binary's entry point with a recording getenv (-help stops it right
// after the configuration is read).
func envNamesRead(t *testing.T) map[string]bool {
	t.Helper()
	read := map[string]bool{}
	if code := run(context.Background(), []string{"-help"}, func(k string) string { read[k] = true; return "" }, io.Discard); code != 0 {
		t.Fatalf("stockworker -help: exit %d", code)
	}
	if len(read) == 0 {
		t.Fatal("stockworker read no environment variable")
	}
	return read
}

// servedPaths says whether the worker's HTTP handler has a route for a path.
func servedPath(t *testing.T) func(path string) bool {
	t.Helper()
	mux, ok := httpHandler(nil, nil, nil, nil, prometheus.NewRegistry()).(*http.ServeMux)
	if !ok {
		t.Fatal("httpHandler is no longer a *http.ServeMux: teach servedPath to find its routes")
	}
	return func(path string) bool {
		_, pattern := mux.Handler(httptest.NewRequest(http.MethodGet, path, nil))
		return pattern == path
	}
}

// podSpec is a pod template of the overlay, named for messages.
type podSpec struct {
	what string
	spec corev1.PodSpec
}

func (m *manifests) podSpecs() []podSpec {
	var out []podSpec
	for _, d := range m.deployments {
		out = append(out, podSpec{"Deployment " + d.Name, d.Spec.Template.Spec})
	}
	for _, j := range m.jobs {
		out = append(out, podSpec{"Job " + j.Name, j.Spec.Template.Spec})
	}
	return out
}

// imageTag splits what pins an image reference: its tag (after the last
// path segment's colon) and whether it has a digest.
func imageTag(image string) (tag string, digest bool) {
	if i := strings.Index(image, "@"); i >= 0 {
		return "", true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:], false
	}
	return "", false
}

// TestManifestsRenderStrictly: every overlay renders, and every object is a
// kind we expect, decoded without unknown fields (render does both). Images
// carry a tag: the dev overlay runs stockflow/stockworker:dev, the overlays
// named prod* a release tag or a digest, never a moving one.
func TestManifestsRenderStrictly(t *testing.T) {
	release := regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		if len(m.deployments) != 1 {
			t.Fatalf("%d Deployments, want 1", len(m.deployments))
		}
		for _, p := range m.podSpecs() {
			for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
				tag, digest := imageTag(c.Image)
				switch {
				case m.overlay == "dev" && c.Image != "stockflow/stockworker:dev":
					t.Errorf("%s container %s: image %q, want stockflow/stockworker:dev", p.what, c.Name, c.Image)
				case strings.HasPrefix(m.overlay, "prod") && !digest && !release.MatchString(tag):
					t.Errorf("%s container %s: image %q is not pinned to a release tag or a digest", p.what, c.Name, c.Image)
				case !digest && (tag == "" || tag == "latest"):
					t.Errorf("%s container %s: image %q has no fixed tag", p.what, c.Name, c.Image)
				}
			}
		}
	})
}

// TestManifestsEnvNamesAreReadByTheWorker: every environment name the
// manifests set — ConfigMap keys, env entries and envFrom names of the
// Deployment and the Job — is one stockworker reads. (Secret keys are file
// names: the pods mount Secrets, and TestManifestsSecretsAreMountedFiles
// checks that every *_FILE setting names one.) The names it reads that no
// manifest sets stay at their defaults, which is fine; they are logged.
func TestManifestsEnvNamesAreReadByTheWorker(t *testing.T) {
	read := envNamesRead(t)
	set := map[string]bool{}
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		check := func(where, name string) {
			set[name] = true
			if !read[name] {
				t.Errorf("%s sets %s, which stockworker does not read", where, name)
			}
		}
		for _, cm := range m.configMaps {
			for k := range cm.Data {
				check("ConfigMap "+cm.Name, k)
			}
			for k := range cm.BinaryData {
				check("ConfigMap "+cm.Name, k)
			}
		}
		for _, p := range m.podSpecs() {
			for _, c := range p.spec.Containers {
				where := p.what + " container " + c.Name
				for _, e := range c.Env {
					check(where, e.Name)
				}
				env, err := m.containerEnv(c)
				if err != nil {
					t.Errorf("%s: %v", where, err)
				}
				for k := range env {
					check(where+" (envFrom)", k)
				}
			}
		}
	})
	var unset []string
	for k := range read {
		if !set[k] {
			unset = append(unset, k)
		}
	}
	slices.Sort(unset)
	t.Logf("stockworker reads %d variables; the manifests leave these at their defaults: %s", len(read), strings.Join(unset, " "))
}

// TestManifestsFitTheWorker checks what the manifests promise the worker
// against what it does: the configuration parses, migrations run in the Job
// and not at start, the probes and the metrics Service reach paths it serves
// on the port of HTTP_ADDR, the termination grace outlasts SHUTDOWN_GRACE,
// group members never outnumber the orders topic's partitions, at most one
// autoscaler owns the Deployment and it watches what the worker consumes,
// the Service and the budget select the worker's pods only, and every pod
// runs locked down.
func TestManifestsFitTheWorker(t *testing.T) {
	served := servedPath(t)
	exported := workerMetricNames(t)
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		if len(m.deployments) == 0 {
			t.Fatal("no Deployment")
		}
		migrateJob := false
		for _, j := range m.jobs {
			what := "Job " + j.Name
			c := workerContainer(t, what, j.Spec.Template.Spec)
			if len(c.Args) == 0 || c.Args[0] != "migrate" {
				t.Errorf("%s: args %q, want `stockworker migrate`", what, c.Args)
				continue
			}
			migrateJob = true
			m.workerConfig(t, what, j.Spec.Template.Spec, c)
			checkPodSecurity(t, what, j.Spec.Template.Spec)
			if p := j.Spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyNever && p != corev1.RestartPolicyOnFailure {
				t.Errorf("%s: restartPolicy %q", what, p)
			}
		}
		if !migrateJob {
			t.Error("no Job runs `stockworker migrate`")
		}
		m.checkTriggerAuthsUsed(t)
		if len(m.pdbs) != 1 {
			t.Errorf("%d PodDisruptionBudgets, want 1", len(m.pdbs))
		}
		for _, p := range m.podSpecs() {
			if sa := p.spec.ServiceAccountName; sa != "" && !slices.ContainsFunc(m.serviceAccounts, func(a *corev1.ServiceAccount) bool { return a.Name == sa }) {
				t.Errorf("%s: serviceAccountName %q is not rendered", p.what, sa)
			}
		}

		for _, d := range m.deployments {
			what := "Deployment " + d.Name
			spec := d.Spec.Template.Spec
			c := workerContainer(t, what, spec)
			cfg, env, files := m.workerConfig(t, what, spec, c)
			checkPodSecurity(t, what, spec)
			if migrateJob && cfg.Migrate {
				t.Errorf("%s: MIGRATE is true although the Job applies the migrations; set MIGRATE=false", what)
			}
			httpPort := portOf(t, what+": HTTP_ADDR", cfg.HTTPAddr)
			checkProbes(t, what, c, httpPort, served)
			checkMetricsService(t, m, c, labels.Set(d.Spec.Template.Labels), httpPort, served)
			checkSelection(t, m, d)

			grace := 30 * time.Second // the Kubernetes default
			if spec.TerminationGracePeriodSeconds != nil {
				grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
			}
			if grace < cfg.ShutdownGrace+shutdownMargin {
				t.Errorf("%s: terminationGracePeriodSeconds %v does not cover SHUTDOWN_GRACE %v + %v", what, grace, cfg.ShutdownGrace, shutdownMargin)
			}

			maxPods, owners := m.maxPods(t, d)
			if len(owners) > 1 {
				t.Errorf("%s is scaled by %d autoscalers at once (%s): keep one", what, len(owners), strings.Join(owners, ", "))
			}
			surge := maxSurge(t, d, maxPods)
			if members := (int(maxPods) + surge) * cfg.Consumers; members > cfg.Partitions {
				t.Errorf("%s: up to %d pods (+%d surge) × CONSUMERS %d = %d group members, more than TOPIC_PARTITIONS %d",
					what, maxPods, surge, cfg.Consumers, members, cfg.Partitions)
			}
			for _, so := range m.scaledObjects {
				checkKafkaTrigger(t, so, cfg, env)
				m.checkKafkaTriggerAuth(t, so, cfg, env, files)
			}
			for _, h := range m.hpas {
				checkHPAMetrics(t, h, cfg, exported)
			}
		}
	})
}

// checkProbes: liveness and readiness (and startup, if any) are HTTP GETs of
// paths the worker serves, on the port it listens on. Liveness is /healthz:
// /readyz fails while MySQL or Kafka is away, and as a liveness probe it
// would restart every pod during an outage.
func checkProbes(t *testing.T, what string, c corev1.Container, httpPort int, served func(string) bool) {
	t.Helper()
	for _, p := range []struct {
		kind     string
		probe    *corev1.Probe
		required bool
	}{{"liveness", c.LivenessProbe, true}, {"readiness", c.ReadinessProbe, true}, {"startup", c.StartupProbe, false}} {
		switch {
		case p.probe == nil:
			if p.required {
				t.Errorf("%s: no %s probe", what, p.kind)
			}
			continue
		case p.probe.HTTPGet == nil:
			t.Errorf("%s: %s probe is not an HTTP GET", what, p.kind)
			continue
		}
		get := p.probe.HTTPGet
		if !served(get.Path) {
			t.Errorf("%s: %s probe path %q is not served by the worker", what, p.kind, get.Path)
		}
		if got := containerPort(c, get.Port); got != httpPort {
			t.Errorf("%s: %s probe port %s (%d) is not the port the worker listens on, %d (HTTP_ADDR)", what, p.kind, get.Port.String(), got, httpPort)
		}
	}
	if p := c.LivenessProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: liveness probe on %q, want /healthz (it must not depend on MySQL or Kafka)", what, p.HTTPGet.Path)
	}
}

// checkSelection: the Deployment's selector matches its pods, and it and
// every PodDisruptionBudget select the worker's pods, never the migration
// Job's.
func checkSelection(t *testing.T, m *manifests, d *appsv1.Deployment) {
	t.Helper()
	podLabels := labels.Set(d.Spec.Template.Labels)
	selectors := map[string]*metav1.LabelSelector{"Deployment " + d.Name: d.Spec.Selector}
	for _, p := range m.pdbs {
		selectors["PodDisruptionBudget "+p.Name] = p.Spec.Selector
	}
	for what, ls := range selectors {
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil || sel.Empty() || !sel.Matches(podLabels) {
			t.Errorf("%s does not select Deployment %s's pods (%v)", what, d.Name, err)
			continue
		}
		for _, j := range m.jobs {
			if sel.Matches(labels.Set(j.Spec.Template.Labels)) {
				t.Errorf("%s also selects the pods of Job %s", what, j.Name)
			}
		}
	}
}

// maxSurge is how many pods a rollout may add above maxPods.
func maxSurge(t *testing.T, d *appsv1.Deployment, maxPods int32) int {
	t.Helper()
	surge := intstr.FromString("25%") // the Kubernetes default
	switch s := d.Spec.Strategy; {
	case s.Type == appsv1.RecreateDeploymentStrategyType:
		return 0
	case s.RollingUpdate != nil && s.RollingUpdate.MaxSurge != nil:
		surge = *s.RollingUpdate.MaxSurge
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&surge, int(maxPods), true)
	if err != nil {
		t.Errorf("Deployment %s: maxSurge: %v", d.Name, err)
	}
	return n
}

// checkHPAMetrics: a pods metric of the HPA is a series the worker exports,
// and a topic it selects is the worker's orders topic.
func checkHPAMetrics(t *testing.T, h *autoscalingv2.HorizontalPodAutoscaler, cfg config, exported map[string]bool) {
	t.Helper()
	for _, metric := range h.Spec.Metrics {
		if metric.Pods == nil {
			continue
		}
		name := metric.Pods.Metric.Name
		if !exported[name] {
			t.Errorf("HorizontalPodAutoscaler %s: pods metric %q is not one the worker exports", h.Name, name)
		}
		if sel := metric.Pods.Metric.Selector; sel != nil {
			if topic, ok := sel.MatchLabels["topic"]; ok && topic != cfg.OrdersTopic {
				t.Errorf("HorizontalPodAutoscaler %s: %s{topic=%q}, but ORDERS_TOPIC is %q", h.Name, name, topic, cfg.OrdersTopic)
			}
		}
	}
}

// TestManifestsAutoscalersAgree: KEDA and the HPA alternative ask for the
// same backlog per pod, so that switching overlays does not change how the
// worker scales.
func TestManifestsAutoscalersAgree(t *testing.T) {
	thresholds := map[string]int64{}
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		for _, so := range m.scaledObjects {
			for _, tr := range so.Spec.Triggers {
				if tr.Type == "kafka" {
					n, err := strconv.ParseInt(tr.Metadata["lagThreshold"], 10, 64)
					if err != nil {
						t.Errorf("ScaledObject %s: lagThreshold: %v", so.Metadata.Name, err)
					}
					thresholds[m.overlay+": ScaledObject lagThreshold"] = n
				}
			}
		}
		for _, h := range m.hpas {
			for _, metric := range h.Spec.Metrics {
				if metric.Pods != nil && metric.Pods.Metric.Name == "stockflow_consumer_lag" {
					if metric.Pods.Target.AverageValue == nil {
						t.Errorf("HorizontalPodAutoscaler %s: stockflow_consumer_lag has no averageValue", h.Name)
						continue
					}
					thresholds[m.overlay+": HPA stockflow_consumer_lag averageValue"] = metric.Pods.Target.AverageValue.Value()
				}
			}
		}
	})
	if len(thresholds) == 0 {
		t.Fatal("no overlay scales on consumer lag")
	}
	values := map[int64]bool{}
	for _, v := range thresholds {
		values[v] = true
	}
	if len(values) > 1 {
		t.Errorf("the autoscalers ask for different backlogs per pod: %v", thresholds)
	}
}

// maxPods is the most pods the Deployment can have: its replicas, or the
// maximum of the autoscaler that owns it. owners names the autoscalers that
// target it; more than one fight over the replica count.
func (m *manifests) maxPods(t *testing.T, d *appsv1.Deployment) (int32, []string) {
	t.Helper()
	var owners []string
	maxPods := int32(1)
	if d.Spec.Replicas != nil {
		maxPods = *d.Spec.Replicas
	}
	scaled := func(owner string, minR, maxR int32) {
		owners = append(owners, owner)
		if d.Spec.Replicas != nil {
			t.Errorf("%s owns Deployment %s, which still sets replicas: every apply would reset the autoscaler's count", owner, d.Name)
		}
		if minR > maxR {
			t.Errorf("%s: minimum %d above maximum %d", owner, minR, maxR)
		}
		maxPods = maxR
	}
	for _, h := range m.hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind == "Deployment" && ref.Name == d.Name {
			minR := int32(1)
			if h.Spec.MinReplicas != nil {
				minR = *h.Spec.MinReplicas
			}
			scaled("HorizontalPodAutoscaler "+h.Name, minR, h.Spec.MaxReplicas)
		}
	}
	for _, so := range m.scaledObjects {
		ref := so.Spec.ScaleTargetRef
		if (ref.Kind == "" || ref.Kind == "Deployment") && ref.Name == d.Name {
			minR, maxR := int32(0), int32(100) // KEDA's defaults
			if so.Spec.MinReplicaCount != nil {
				minR = *so.Spec.MinReplicaCount
			}
			if so.Spec.MaxReplicaCount != nil {
				maxR = *so.Spec.MaxReplicaCount
			}
			scaled("ScaledObject "+so.Metadata.Name, minR, maxR)
		}
	}
	for _, h := range m.hpas {
		if h.Spec.ScaleTargetRef.Name != d.Name {
			t.Errorf("HorizontalPodAutoscaler %s targets %s %q, not a rendered Deployment", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
	}
	for _, so := range m.scaledObjects {
		if so.Spec.ScaleTargetRef.Name != d.Name {
			t.Errorf("ScaledObject %s targets %q, not a rendered Deployment", so.Metadata.Name, so.Spec.ScaleTargetRef.Name)
		}
	}
	return maxPods, owners
}

// checkKafkaTrigger: the ScaledObject's kafka trigger measures the lag of the
// group, topic and brokers the worker uses, parameters given directly or
// read from the worker container's environment (KEDA's *FromEnv).
func checkKafkaTrigger(t *testing.T, so *scaledObject, cfg config, env map[string]string) {
	t.Helper()
	kafkaTriggers := 0
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "kafka" {
			continue
		}
		kafkaTriggers++
		param := func(name string) string {
			if v, ok := tr.Metadata[name]; ok {
				return v
			}
			if from, ok := tr.Metadata[name+"FromEnv"]; ok {
				v, set := env[from]
				if !set {
					t.Errorf("ScaledObject %s: %sFromEnv names %s, which the worker container does not set", so.Metadata.Name, name, from)
				}
				return v
			}
			return ""
		}
		if got, want := strings.Split(param("bootstrapServers"), ","), cfg.brokerList(); !slices.Equal(got, want) {
			t.Errorf("ScaledObject %s: bootstrapServers %q, the worker uses KAFKA_BROKERS %q", so.Metadata.Name, got, want)
		}
		if got := param("consumerGroup"); got != cfg.GroupID {
			t.Errorf("ScaledObject %s: consumerGroup %q, the worker's GROUP_ID is %q", so.Metadata.Name, got, cfg.GroupID)
		}
		if got := param("topic"); got != cfg.OrdersTopic {
			t.Errorf("ScaledObject %s: topic %q, the worker's ORDERS_TOPIC is %q", so.Metadata.Name, got, cfg.OrdersTopic)
		}
		if n, err := strconv.ParseInt(param("lagThreshold"), 10, 64); err != nil || n < 1 {
			t.Errorf("ScaledObject %s: lagThreshold %q is not a positive number", so.Metadata.Name, param("lagThreshold"))
		}
		// A new group starts at the earliest offset: KEDA must count those
		// messages as lag too (its default, latest, would see none).
		if got := param("offsetResetPolicy"); got != "earliest" {
			t.Errorf("ScaledObject %s: offsetResetPolicy %q, want earliest like the worker", so.Metadata.Name, got)
		}
	}
	if kafkaTriggers == 0 {
		t.Errorf("ScaledObject %s has no kafka trigger", so.Metadata.Name)
	}
}

// checkMetricsService: a Service selects the worker's pods and exposes the
// HTTP port for scraping, by a port named metrics or Prometheus annotations
// that name the port and a path the worker serves.
func checkMetricsService(t *testing.T, m *manifests, c corev1.Container, podLabels labels.Set, httpPort int, served func(string) bool) {
	t.Helper()
	found := false
	for _, s := range m.services {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			continue
		}
		for _, j := range m.jobs {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(j.Spec.Template.Labels)) {
				t.Errorf("Service %s also selects the pods of Job %s", s.Name, j.Name)
			}
		}
		named := false
		for _, p := range s.Spec.Ports {
			if containerPort(c, p.TargetPort) != httpPort {
				t.Errorf("Service %s port %s: targetPort %s is not the worker's HTTP port %d", s.Name, p.Name, p.TargetPort.String(), httpPort)
			}
			named = named || p.Name == "metrics"
		}
		a := s.Annotations
		if a["prometheus.io/scrape"] == "true" {
			if port := a["prometheus.io/port"]; port != "" && port != strconv.Itoa(httpPort) {
				t.Errorf("Service %s: prometheus.io/port %s, the worker serves /metrics on %d", s.Name, port, httpPort)
			}
			path := a["prometheus.io/path"]
			if path == "" {
				path = "/metrics"
			}
			if !served(path) {
				t.Errorf("Service %s: prometheus.io/path %q is not served by the worker", s.Name, path)
			}
		} else if !named {
			continue
		}
		found = true
	}
	if !found {
		t.Error("no Service exposes the worker's /metrics (a port named metrics, or prometheus.io/scrape annotations)")
	}
}

// checkPodSecurity: non-root, no privilege escalation, read-only root, no
// capabilities, no service account token, and resource requests and a memory
// limit on every container.
func checkPodSecurity(t *testing.T, what string, spec corev1.PodSpec) {
	t.Helper()
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken is not false", what)
	}
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
	if sc := spec.SecurityContext; sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccompProfile is not RuntimeDefault", what)
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		where := what + " container " + c.Name
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", where)
			continue
		}
		if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
			t.Errorf("%s: runAsNonRoot is not true", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", where)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", where)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none", where)
		}
		r := c.Resources
		if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() {
			t.Errorf("%s: no cpu and memory requests", where)
		}
		if r.Limits.Memory().IsZero() {
			t.Errorf("%s: no memory limit", where)
		} else if r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
			t.Errorf("%s: memory limit below its request", where)
		}
		if !r.Limits.Cpu().IsZero() && r.Limits.Cpu().Cmp(*r.Requests.Cpu()) < 0 {
			t.Errorf("%s: cpu limit below its request", where)
		}
	}
}

// containerPort resolves a probe's or Service's port, by number or by the
// container port's name; 0 if it names none.
func containerPort(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

func portOf(t *testing.T, what, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", what, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("%s %q: port %q is not a number", what, addr, port)
	}
	return n
}

// workerMetricNames are the series the worker registers (worker.NewMetrics),
// read from their descriptions.
func workerMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	rec := &descRecorder{names: map[string]bool{}}
	worker.NewMetrics(rec)
	if len(rec.names) == 0 {
		t.Fatal("worker.NewMetrics registered nothing")
	}
	return rec.names
}

// descRecorder is a prometheus.Registerer that only records metric names,
// read from each Desc's String (Desc has no accessor for its name).
type descRecorder struct{ names map[string]bool }

var _ prometheus.Registerer = (*descRecorder)(nil)

func (r *descRecorder) Register(c prometheus.Collector) error {
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }() // drained below until closed
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *descRecorder) Unregister(prometheus.Collector) bool { return false }

// TestManifestsMatchKEDASchemas validates every rendered ScaledObject and
// TriggerAuthentication against the openAPIV3Schema of KEDA's own CRDs
// (kedaVersion), taken from KEDA's Go module: not copied into this
// repository. Like the API server's strict field validation, a field the
// schema does not declare is an error. The schemas' CEL rules
// (x-kubernetes-validations) are not evaluated here; they are logged, and the
// one KEDA has (minReplicaCount ≤ maxReplicaCount) is checked by
// TestManifestsFitTheWorker.
func TestManifestsMatchKEDASchemas(t *testing.T) {
	dir := kedaCRDDir(t)
	scaledObjects := kedaSchema(t, dir, "scaledobjects")
	triggerAuths := kedaSchema(t, dir, "triggerauthentications")
	validated := map[string]int{}
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		validate := func(kind, name string, schema *jsonschema.Schema, raw []byte) {
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(doc); err != nil {
				t.Errorf("%s %s does not match KEDA %s's CRD:\n%v", kind, name, kedaVersion, err)
			}
			validated[kind]++
		}
		for _, so := range m.scaledObjects {
			validate("ScaledObject", so.Metadata.Name, scaledObjects, so.raw)
		}
		for _, ta := range m.triggerAuths {
			validate("TriggerAuthentication", ta.Metadata.Name, triggerAuths, ta.raw)
		}
	})
	for _, kind := range []string{"ScaledObject", "TriggerAuthentication"} {
		if validated[kind] == 0 {
			t.Errorf("no overlay renders a %s", kind)
		}
	}
}

// kedaCRDDir is the directory of KEDA's CRDs in its module. The module comes
// from the Go module cache, or through the module proxy (verified against
// the checksum database as any module is); `go mod download` runs outside
// this module, so go.mod and go.sum stay as they are. Without it the test is
// skipped, except under CI=true.
func kedaCRDDir(t *testing.T) string {
	t.Helper()
	dir, err := kedaModuleDir(t)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("KEDA's CRD schemas are needed under CI=true: %v", err)
		}
		t.Skipf("KEDA's CRD schemas are not available (%v); they come from `go mod download %s@%s`", err, kedaModule, kedaVersion)
	}
	return filepath.Join(dir, filepath.FromSlash(kedaCRDs))
}

// kedaSchema compiles the v1alpha1 openAPIV3Schema of KEDA's CRD of the
// resource plural (config/crd/bases/keda.sh_<plural>.yaml).
func kedaSchema(t *testing.T, dir, plural string) *jsonschema.Schema {
	t.Helper()
	file := "keda.sh_" + plural + ".yaml"
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatalf("%s@%s: %v", kedaModule, kedaVersion, err)
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	schema := crdSchema(doc, "keda.sh", "v1alpha1")
	if schema == nil {
		t.Fatalf("%s: no keda.sh v1alpha1 openAPIV3Schema", file)
	}
	for _, rule := range closeObjects(schema, true) {
		t.Logf("KEDA CRD rule of %s not evaluated here (CEL): %s", plural, rule)
	}
	c := jsonschema.NewCompiler()
	// OpenAPI 3.0 schemas are JSON Schema draft 4 with extensions (x-kubernetes-*, nullable), which it ignores.
	c.DefaultDraft(jsonschema.Draft4)
	url := "https://keda.sh/crd/" + kedaVersion + "/" + plural + ".json"
	if err := c.AddResource(url, schema); err != nil {
		t.Fatal(err)
	}
	compiled, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compile KEDA's %s schema: %v", plural, err)
	}
	return compiled
}

// crdSchema finds the openAPIV3Schema of one version in a CRD decoded by
// jsonschema.UnmarshalJSON (numbers as json.Number, as the compiler wants).
func crdSchema(crd any, group, version string) map[string]any {
	obj := func(v any, key string) map[string]any {
		m, _ := v.(map[string]any)
		sub, _ := m[key].(map[string]any)
		return sub
	}
	spec := obj(crd, "spec")
	if spec["group"] != group {
		return nil
	}
	versions, _ := spec["versions"].([]any)
	for _, v := range versions {
		if m, _ := v.(map[string]any); m["name"] == version {
			return obj(obj(v, "schema"), "openAPIV3Schema")
		}
	}
	return nil
}

// closeObjects makes a CRD schema reject what the API server would prune:
// every object schema that declares its properties, and neither allows
// additional ones nor preserves unknown fields, gets additionalProperties
// false (the object's metadata excepted: the API server checks that itself,
// and render decodes it strictly). It returns the CEL rules it met.
func closeObjects(s map[string]any, root bool) []string {
	var rules []string
	if vs, ok := s["x-kubernetes-validations"].([]any); ok {
		for _, v := range vs {
			if r, ok := v.(map[string]any); ok {
				rules = append(rules, fmt.Sprint(r["rule"]))
			}
		}
	}
	preserve, _ := s["x-kubernetes-preserve-unknown-fields"].(bool)
	if _, has := s["additionalProperties"]; s["type"] == "object" && !has && !preserve {
		s["additionalProperties"] = false
	}
	if props, ok := s["properties"].(map[string]any); ok {
		for name, p := range props {
			if ps, ok := p.(map[string]any); ok && !(root && name == "metadata") {
				rules = append(rules, closeObjects(ps, false)...)
			}
		}
	}
	if items, ok := s["items"].(map[string]any); ok {
		rules = append(rules, closeObjects(items, false)...)
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		rules = append(rules, closeObjects(ap, false)...)
	}
	for _, k := range []string{"anyOf", "allOf", "oneOf"} {
		if list, ok := s[k].([]any); ok {
			for _, e := range list {
				if es, ok := e.(map[string]any); ok {
					rules = append(rules, closeObjects(es, false)...)
				}
			}
		}
	}
	return rules
}

// kedaModuleDir downloads (or finds in the module cache) KEDA's module and
// returns its directory.
func kedaModuleDir(t *testing.T) (string, error) {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", kedaModule+"@"+kedaVersion)
	cmd.Dir = t.TempDir() // outside any module: nothing here changes go.mod or go.sum
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off", "GO111MODULE=on")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil && err == nil {
		err = jerr
	}
	switch {
	case info.Error != "":
		return "", errors.New(info.Error)
	case err != nil:
		return "", fmt.Errorf("go mod download: %v: %s", err, strings.TrimSpace(stderr.String()))
	case info.Dir == "":
		return "", errors.New("go mod download gave no directory")
	}
	return info.Dir, nil
}
