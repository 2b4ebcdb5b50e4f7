package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	corev1 "k8s.io/api/core/v1"
)

// The manifests' secrets: every secret reaches the worker as a file of a
// mounted Kubernetes Secret, named by a *_FILE setting, never as an
// environment variable or a ConfigMap value; the migration Job and the
// worker pods each hold their own database user's Secret and nothing of the
// other's; KEDA reads the brokers with the worker's credentials.

// The database users of README "Secure MySQL and Redis": the migration Job's
// (DDL on the schema) and the worker's (SELECT, INSERT, UPDATE on its tables).
const (
	migrateDBUser = "stockflow_migrate"
	workerDBUser  = "stockflow"
)

// mountedFile is a file a container sees in a volume of its pod: which key
// of which Secret or ConfigMap it is, and what it holds.
type mountedFile struct {
	path    string
	kind    string // Secret or ConfigMap
	object  string
	key     string
	content string
	// template: the Secret is base/secret-template.yaml's, filled in by an
	// operator; its content is a placeholder.
	template bool
	mode     int32 // the file's permission bits
}

// source names the Secret or ConfigMap key the file is, for comparisons and
// messages; never the content.
func (f mountedFile) source() string {
	if f.kind == "" {
		return "no file"
	}
	return fmt.Sprintf("%s %s, key %s", f.kind, f.object, f.key)
}

// podFiles are the files a container's *_FILE settings name, by setting.
type podFiles map[string]mountedFile

// filesOf finds the file of every *_FILE setting of env in the volumes the
// container mounts. A path in no mounted volume, in a volume that is not a
// Secret, ConfigMap or projection of them, or naming a key its object does
// not have, is an error: the worker would stop at start.
func (m *manifests) filesOf(spec corev1.PodSpec, c corev1.Container, env map[string]string) (podFiles, error) {
	files := podFiles{}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if !strings.HasSuffix(k, "_FILE") || env[k] == "" {
			continue
		}
		f, err := m.mountedFile(spec, c, env[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
			continue
		}
		files[k] = f
	}
	return files, errors.Join(errs...)
}

// mountedFile resolves path as the kubelet lays out the container's volumes.
func (m *manifests) mountedFile(spec corev1.PodSpec, c corev1.Container, path string) (mountedFile, error) {
	f := mountedFile{path: path}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return f, fmt.Errorf("%q is not a clean absolute path", path)
	}
	var mount *corev1.VolumeMount
	var rel string
	for i, vm := range c.VolumeMounts {
		var r string
		switch {
		case vm.SubPath != "" && path == vm.MountPath:
			r = vm.SubPath
		case vm.SubPath == "" && vm.SubPathExpr == "" && strings.HasPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/"):
			r = strings.TrimPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/")
		default:
			continue
		}
		if mount == nil || len(vm.MountPath) > len(mount.MountPath) {
			mount, rel = &c.VolumeMounts[i], r
		}
	}
	if mount == nil {
		return f, fmt.Errorf("%s is in no volume the container mounts", path)
	}
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name })
	if i < 0 {
		return f, fmt.Errorf("%s: the mount at %s names volume %q, which the pod does not have", path, mount.MountPath, mount.Name)
	}
	vol := spec.Volumes[i]
	mode := int32(0o644) // the kubelet's default
	fill := func(kind, name string, items []corev1.KeyToPath, defaultMode *int32) (bool, error) {
		if defaultMode != nil {
			mode = *defaultMode
		}
		key, itemMode, ok := keyAt(items, rel)
		if !ok {
			return false, nil
		}
		if itemMode != nil {
			mode = *itemMode
		}
		var values map[string]string
		switch kind {
		case "Secret":
			s := m.secret(name)
			if s == nil {
				return false, fmt.Errorf("%s: Secret %q is neither rendered nor in base/secret-template.yaml", path, name)
			}
			values = secretValues(s)
			f.template = m.fromTemplate(name)
		case "ConfigMap":
			cm, ok := m.configMaps[name]
			if !ok {
				return false, fmt.Errorf("%s: ConfigMap %q is not rendered", path, name)
			}
			values = cm.Data
		}
		content, ok := values[key]
		if !ok && len(items) == 0 {
			return false, nil // a projection of another object may have it
		}
		if !ok {
			return false, fmt.Errorf("%s: %s %q has no key %q", path, kind, name, key)
		}
		f.kind, f.object, f.key, f.content, f.mode = kind, name, key, content, mode
		return true, nil
	}
	var found bool
	var err error
	switch {
	case vol.Secret != nil:
		found, err = fill("Secret", vol.Secret.SecretName, vol.Secret.Items, vol.Secret.DefaultMode)
	case vol.ConfigMap != nil:
		found, err = fill("ConfigMap", vol.ConfigMap.Name, vol.ConfigMap.Items, vol.ConfigMap.DefaultMode)
	case vol.Projected != nil:
		for _, src := range vol.Projected.Sources {
			switch {
			case src.Secret != nil:
				found, err = fill("Secret", src.Secret.Name, src.Secret.Items, vol.Projected.DefaultMode)
			case src.ConfigMap != nil:
				found, err = fill("ConfigMap", src.ConfigMap.Name, src.ConfigMap.Items, vol.Projected.DefaultMode)
			}
			if found || err != nil {
				break
			}
		}
	default:
		return f, fmt.Errorf("%s: volume %q is not a Secret, a ConfigMap or a projection of them", path, vol.Name)
	}
	if err == nil && !found {
		err = fmt.Errorf("%s: volume %q has no file %q", path, vol.Name, rel)
	}
	return f, err
}

// keyAt is the key of the file at rel in a Secret or ConfigMap volume:
// the item whose path it is, or, without items, the key named rel.
func keyAt(items []corev1.KeyToPath, rel string) (key string, mode *int32, ok bool) {
	if len(items) == 0 {
		return rel, nil, !strings.Contains(rel, "/")
	}
	for _, it := range items {
		if it.Path == rel {
			return it.Key, it.Mode, true
		}
	}
	return "", nil, false
}

// readable reports whether the pod's processes may read a file of a Secret
// or ConfigMap volume: the kubelet makes them root's, with the group
// fsGroup when the pod sets one; the pods run as a user other than root.
func readable(spec corev1.PodSpec, mode int32) bool {
	fsGroup := spec.SecurityContext != nil && spec.SecurityContext.FSGroup != nil
	return mode&0o004 != 0 || (fsGroup && mode&0o040 != 0)
}

// materialize writes the files into a directory of the test and returns env
// with every *_FILE setting pointing at its copy, for parseConfig. A
// template Secret holds placeholders an operator replaces; for the TLS files
// (*_TLS_CA_FILE, *_TLS_CERT_FILE, *_TLS_KEY_FILE) the copy is a test
// certificate or key instead, so that the worker can load them.
func (files podFiles) materialize(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	out := maps.Clone(env)
	if out == nil {
		out = map[string]string{}
	}
	dir := t.TempDir()
	var certPEM, keyPEM string
	for k, f := range files {
		content := f.content
		if f.template && strings.Contains(k, "_TLS_") {
			if certPEM == "" {
				certPEM, keyPEM = testKeyPair(t)
			}
			content = certPEM
			if strings.HasSuffix(k, "_KEY_FILE") {
				content = keyPEM
			}
		}
		p := filepath.Join(dir, k)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		out[k] = p
	}
	return out
}

// testKeyPair is a fresh self-signed CA certificate and its key, PEM.
func testKeyPair(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "manifest test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// secretVars are stockworker's secret settings: those it also reads from a
// file, X and X_FILE (MYSQL_DSN, KAFKA_SASL_PASSWORD, REDIS_PASSWORD).
func secretVars(t *testing.T, read map[string]bool) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for k := range read {
		if stem, ok := strings.CutSuffix(k, "_FILE"); ok && read[stem] {
			out[stem] = true
		}
	}
	for _, want := range []string{"MYSQL_DSN", kafkaconn.EnvPassword, "REDIS_PASSWORD"} {
		if !out[want] {
			t.Fatalf("stockworker no longer reads %s and %s_FILE: teach this test its secrets", want, want)
		}
	}
	return out
}

// secretStrings are the values of every Secret the overlay renders or the
// templates hold, and the passwords of the DSNs among them, by where they
// come from; short values are left out (they would match by accident).
func (m *manifests) secretStrings() map[string]string {
	out := map[string]string{}
	add := func(where, v string) {
		if len(v) >= 8 {
			out[v] = where
		}
	}
	for _, objs := range []map[string]*corev1.Secret{m.templates, m.secrets} {
		for name, s := range objs {
			for k, v := range secretValues(s) {
				where := fmt.Sprintf("Secret %s, key %s", name, k)
				add(where, v)
				if c, err := mysql.ParseDSN(v); err == nil {
					add(where+" (its password)", c.Passwd)
				}
			}
		}
	}
	return out
}

// mountedSecrets are the names of the Secrets a pod mounts.
func mountedSecrets(spec corev1.PodSpec) map[string]bool {
	out := map[string]bool{}
	for _, v := range spec.Volumes {
		switch {
		case v.Secret != nil:
			out[v.Secret.SecretName] = true
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					out[src.Secret.Name] = true
				}
			}
		}
	}
	return out
}

// TestManifestsSecretsAreMountedFiles checks how the secrets reach the pods:
//   - every *_FILE setting names a file in a volume the container mounts, a
//     key its Secret or ConfigMap has (rendered, or base/secret-template.yaml
//     for those an operator creates), readable by the pod's non-root user;
//   - a secret setting (one stockworker also reads from a _FILE) is never an
//     environment variable, and its file is a Secret's, not a ConfigMap's;
//   - no ConfigMap key is a secret setting, and no ConfigMap value or literal
//     env value holds a value of any Secret (or a DSN's password);
//   - the migration Job connects as stockflow_migrate and the Deployment as
//     stockflow, to the same database with the same TLS files, each from its
//     own Secret: the Job mounts none of the worker's secrets and the
//     Deployment not the Job's;
//   - the prod* overlays take the secure path: Kafka over TLS with SASL,
//     MySQL over TLS with a CA, for the Deployment and the Job.
func TestManifestsSecretsAreMountedFiles(t *testing.T) {
	secret := secretVars(t, envNamesRead(t))
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		strs := m.secretStrings()
		holdsSecret := func(v string) (string, bool) {
			for s, where := range strs {
				if strings.Contains(v, s) {
					return where, true
				}
			}
			return "", false
		}
		for _, cm := range m.configMaps {
			for k, v := range cm.Data {
				if secret[k] {
					t.Errorf("ConfigMap %s sets %s, a secret: put it in a Secret and name its file with %s_FILE", cm.Name, k, k)
				}
				if where, ok := holdsSecret(v); ok {
					t.Errorf("ConfigMap %s: %s holds the value of %s", cm.Name, k, where)
				}
			}
		}

		type pod struct {
			what  string
			spec  corev1.PodSpec
			cfg   config
			env   map[string]string
			files podFiles
		}
		var deployments, jobs []pod
		for _, p := range m.podSpecs() {
			c := workerContainer(t, p.what, p.spec)
			for _, e := range c.Env {
				if where, ok := holdsSecret(e.Value); ok && e.ValueFrom == nil {
					t.Errorf("%s: env %s holds the value of %s", p.what, e.Name, where)
				}
			}
			cfg, env, files := m.workerConfig(t, p.what, p.spec, c)
			for k := range secret {
				if _, set := env[k]; set {
					t.Errorf("%s sets %s in the environment: a secret is a file of a mounted Secret (%s_FILE)", p.what, k, k)
				}
				if f, ok := files[k+"_FILE"]; ok && f.kind != "Secret" {
					t.Errorf("%s: %s_FILE is %s: a secret belongs in a Secret", p.what, k, f.source())
				}
			}
			for k, f := range files {
				if !readable(p.spec, f.mode) {
					t.Errorf("%s: %s (%s) has mode %#o, which the pod's non-root user cannot read (give the pod an fsGroup and the file group read, or world read)",
						p.what, k, f.path, f.mode)
				}
			}
			if _, ok := files["MYSQL_DSN_FILE"]; !ok {
				t.Errorf("%s: no MYSQL_DSN_FILE: the DSN, with its password, comes from a file of a mounted Secret", p.what)
			}
			p := pod{p.what, p.spec, cfg, env, files}
			if strings.HasPrefix(p.what, "Job ") {
				jobs = append(jobs, p)
			} else {
				deployments = append(deployments, p)
			}
		}

		dbUser := func(p pod, want string) *mysql.Config {
			c, err := mysql.ParseDSN(p.cfg.MySQLDSN)
			if err != nil {
				t.Errorf("%s: the DSN of MYSQL_DSN_FILE does not parse: %v", p.what, err)
				return nil
			}
			if c.User != want {
				t.Errorf("%s connects to MySQL as %q (%s), want %s", p.what, c.User, p.files["MYSQL_DSN_FILE"].source(), want)
			}
			return c
		}
		for _, d := range deployments {
			dc := dbUser(d, workerDBUser)
			for _, j := range jobs {
				jc := dbUser(j, migrateDBUser)
				if dc != nil && jc != nil && (dc.Addr != jc.Addr || dc.DBName != jc.DBName) {
					t.Errorf("%s migrates %s/%s, but %s uses %s/%s", j.what, jc.Addr, jc.DBName, d.what, dc.Addr, dc.DBName)
				}
				for _, k := range []string{"MYSQL_TLS_CA_FILE", "MYSQL_TLS_CERT_FILE", "MYSQL_TLS_KEY_FILE"} {
					if d.env[k] != j.env[k] || d.files[k].source() != j.files[k].source() {
						t.Errorf("%s: %s is %q (%s), but %q (%s) in %s: the Job connects to MySQL as the worker does",
							j.what, k, j.env[k], j.files[k].source(), d.env[k], d.files[k].source(), d.what)
					}
				}
				if s := j.files["MYSQL_DSN_FILE"].object; mountedSecrets(d.spec)[s] {
					t.Errorf("%s mounts Secret %s, the migration user's credentials", d.what, s)
				}
				for k := range secret {
					if f, ok := d.files[k+"_FILE"]; ok && mountedSecrets(j.spec)[f.object] {
						t.Errorf("%s mounts Secret %s, which holds the worker's %s", j.what, f.object, k)
					}
				}
			}
		}

		if strings.HasPrefix(m.overlay, "prod") {
			for _, p := range append(slices.Clone(deployments), jobs...) {
				if p.cfg.MySQLTLS.CA == "" {
					t.Errorf("%s: MySQL without MYSQL_TLS_CA_FILE: prod connects over TLS and verifies the server", p.what)
				}
			}
			for _, d := range deployments {
				if k := d.cfg.Kafka; !k.TLS || k.Mechanism == "" {
					t.Errorf("%s: Kafka as %s: prod connects over SASL_SSL (KAFKA_TLS=true and KAFKA_SASL_MECHANISM)", d.what, d.cfg.KafkaSecurity)
				}
			}
		}
	})
}

// kedaSASL is KEDA's name of each SASL mechanism (its kafka trigger's sasl).
var kedaSASL = map[string]string{
	kafkaconn.Plain:       "plaintext",
	kafkaconn.ScramSHA256: "scram_sha256",
	kafkaconn.ScramSHA512: "scram_sha512",
}

// checkKafkaTriggerAuth: KEDA's kafka trigger connects as the worker does.
// tls and sasl (trigger metadata, or the TriggerAuthentication) say what the
// worker's KAFKA_TLS and KAFKA_SASL_MECHANISM say; with SASL, its
// authenticationRef names a rendered TriggerAuthentication that gives a
// username and a password, from a Secret (the worker's, when it is the
// worker's user); with a CA file, its ca is the same Secret key as the
// worker's KAFKA_TLS_CA_FILE, and a client certificate likewise. unsafeSsl
// is never on. env parameters must be set in the worker container.
func (m *manifests) checkKafkaTriggerAuth(t *testing.T, so *scaledObject, cfg config, env map[string]string, files podFiles) {
	t.Helper()
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "kafka" {
			continue
		}
		where := "ScaledObject " + so.Metadata.Name
		var ta *triggerAuthentication
		if ref := tr.AuthenticationRef; ref != nil {
			if ref.Kind != "" && ref.Kind != "TriggerAuthentication" {
				t.Errorf("%s: authenticationRef to a %s, which the manifests cannot render; use a TriggerAuthentication", where, ref.Kind)
			}
			i := slices.IndexFunc(m.triggerAuths, func(a *triggerAuthentication) bool { return a.Metadata.Name == ref.Name })
			if i < 0 {
				t.Errorf("%s: authenticationRef %q is not a rendered TriggerAuthentication", where, ref.Name)
			} else {
				ta = m.triggerAuths[i]
			}
		}
		// param is a trigger parameter, its value and where it comes from.
		param := func(name string) (value, source string, ok bool) {
			if v, ok := tr.Metadata[name]; ok {
				return v, "trigger metadata", true
			}
			if ta == nil {
				return "", "", false
			}
			for _, e := range ta.Spec.Env {
				if e.Parameter != name {
					continue
				}
				if e.ContainerName != "" && e.ContainerName != "stockworker" {
					t.Errorf("TriggerAuthentication %s: %s from container %q, not the worker's", ta.Metadata.Name, name, e.ContainerName)
				}
				v, set := env[e.Name]
				if !set {
					t.Errorf("TriggerAuthentication %s: %s from %s, which the worker container does not set", ta.Metadata.Name, name, e.Name)
				}
				return v, "env " + e.Name, true
			}
			for _, r := range ta.Spec.SecretTargetRef {
				if r.Parameter != name {
					continue
				}
				v, has := "", false
				if s := m.secret(r.Name); s != nil {
					v, has = secretValues(s)[r.Key]
				}
				if !has {
					t.Errorf("TriggerAuthentication %s: %s from Secret %q key %q, which neither the overlay nor base/secret-template.yaml has", ta.Metadata.Name, name, r.Name, r.Key)
				}
				return v, mountedFile{kind: "Secret", object: r.Name, key: r.Key}.source(), true
			}
			for _, r := range ta.Spec.ConfigMapTargetRef {
				if r.Parameter != name {
					continue
				}
				v, has := "", false
				if cm, ok := m.configMaps[r.Name]; ok {
					v, has = cm.Data[r.Key]
				}
				if !has {
					t.Errorf("TriggerAuthentication %s: %s from ConfigMap %q key %q, which is not rendered", ta.Metadata.Name, name, r.Name, r.Key)
				}
				return v, mountedFile{kind: "ConfigMap", object: r.Name, key: r.Key}.source(), true
			}
			return "", "", false
		}

		k := cfg.Kafka
		tlsParam, _, _ := param("tls")
		if want := map[bool]string{true: "enable", false: "disable"}[k.TLS]; tlsParam != want && !(tlsParam == "" && !k.TLS) {
			t.Errorf("%s: tls %q, the worker's KAFKA_TLS=%v wants %q", where, tlsParam, k.TLS, want)
		}
		if v, _, _ := param("unsafeSsl"); v == "true" {
			t.Errorf("%s: unsafeSsl: KEDA would not verify the brokers' certificates, which the worker always does", where)
		}
		mechanism := strings.ToUpper(strings.TrimSpace(k.Mechanism))
		saslParam, _, _ := param("sasl")
		if want := kedaSASL[mechanism]; saslParam != want && !(mechanism == "" && saslParam == "none") {
			t.Errorf("%s: sasl %q, the worker's KAFKA_SASL_MECHANISM=%q wants %q", where, saslParam, k.Mechanism, want)
		}
		if mechanism != "" {
			if ta == nil {
				t.Errorf("%s: the brokers ask for SASL (KAFKA_SASL_MECHANISM=%s) and the trigger has no authenticationRef", where, k.Mechanism)
				continue
			}
			user, _, hasUser := param("username")
			_, pwSource, hasPW := param("password")
			switch {
			case !hasUser || !hasPW:
				t.Errorf("%s: TriggerAuthentication %s gives no username or no password", where, ta.Metadata.Name)
			case pwSource == "trigger metadata" || strings.HasPrefix(pwSource, "ConfigMap ") || strings.HasPrefix(pwSource, "env "):
				t.Errorf("%s: the password comes from %s: it belongs in a Secret", where, pwSource)
			case user == k.Username && pwSource != files[kafkaconn.EnvPasswordFile].source():
				t.Errorf("%s: user %s's password comes from %s, the worker's from %s", where, user, pwSource, files[kafkaconn.EnvPasswordFile].source())
			}
		}
		if k.TLS {
			for _, p := range []struct{ param, file string }{
				{"ca", kafkaconn.EnvCAFile}, {"cert", kafkaconn.EnvCertFile}, {"key", kafkaconn.EnvKeyFile},
			} {
				f, ok := files[p.file]
				if !ok {
					continue
				}
				if _, src, has := param(p.param); !has || src != f.source() {
					t.Errorf("%s: %s from %q, but the worker's %s is %s: KEDA must trust and present what the worker does", where, p.param, src, p.file, f.source())
				}
			}
		}
	}
}

// checkTriggerAuthsUsed: every TriggerAuthentication is named by a
// ScaledObject's trigger (one left over from a removed ScaledObject would
// make `kubectl apply` fail on a cluster without KEDA).
func (m *manifests) checkTriggerAuthsUsed(t *testing.T) {
	t.Helper()
	used := map[string]bool{}
	for _, so := range m.scaledObjects {
		for _, tr := range so.Spec.Triggers {
			if tr.AuthenticationRef != nil {
				used[tr.AuthenticationRef.Name] = true
			}
		}
	}
	for _, ta := range m.triggerAuths {
		if !used[ta.Metadata.Name] {
			t.Errorf("TriggerAuthentication %s is named by no ScaledObject", ta.Metadata.Name)
		}
	}
}
