package main

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/go-sql-driver/mysql"
)

// composeFile is the Compose file for a laptop; stockworkerImage is the image
// its migrations and workers run.
const (
	composeFile      = "../../deploy/compose.yaml"
	stockworkerImage = "stockflow/stockworker:dev"
)

// settingNames returns the environment variables stockworker reads, as
// parseConfig asks for them.
func settingNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	_, _ = parseConfig(nil, func(k string) string { names[k] = true; return "" }, io.Discard)
	if len(names) < 10 {
		t.Fatalf("parseConfig read only %v", names)
	}
	return names
}

// loadCompose reads the Compose file the way `docker compose` does (the
// compose-spec loader: schema validation, interpolation, merge keys,
// consistency checks), with an empty environment, so every ${VAR:-default}
// takes its default.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile}, cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

// env flattens a service's environment; a variable without a value is "".
func env(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		} else {
			out[k] = ""
		}
	}
	return out
}

// deploy/compose.yaml is a valid Compose file, and what it tells stockworker
// is what stockworker reads: every variable a setting, every value accepted
// by parseConfig, every address a service of the file, the workers started
// only after the migrations succeeded.
func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	names := settingNames(t)

	for _, name := range []string{"kafka", "mysql", "redis", "migrate"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	if img := p.Services["kafka"].Image; !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("kafka runs %q, want apache/kafka", img)
	}
	if img := p.Services["mysql"].Image; !strings.HasPrefix(img, "mysql:8") {
		t.Errorf("mysql runs %q, want mysql:8", img)
	}

	dockerfile, err := filepath.Abs("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var workers []string
	published := map[string]string{}
	for name, s := range p.Services {
		for _, port := range s.Ports {
			key := port.HostIP + ":" + port.Published
			if other, ok := published[key]; ok {
				t.Errorf("%s and %s both publish %s", name, other, key)
			}
			published[key] = name
		}
		if s.Image != stockworkerImage {
			continue
		}
		if s.Build == nil || filepath.Join(s.Build.Context, s.Build.Dockerfile) != dockerfile {
			t.Errorf("%s: build %+v, want deploy/Dockerfile in the repository", name, s.Build)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: read_only %v, cap_drop %v; want a read-only root and no capabilities", name, s.ReadOnly, s.CapDrop)
		}
		e := env(s)
		for k := range e {
			if !names[k] {
				t.Errorf("%s sets %s, which stockworker does not read", name, k)
			}
		}
		getenv := func(k string) string { return e[k] }
		cfg, err := parseConfig(nil, getenv, io.Discard)
		if err != nil {
			t.Errorf("%s: stockworker refuses its settings: %v", name, err)
			continue
		}
		checkDSN(t, p, name, cfg.MySQLDSN)
		if len(s.Command) > 0 {
			if !slices.Equal(s.Command, []string{"migrate"}) {
				t.Errorf("%s: command %q; a stockworker service either migrates or works", name, s.Command)
			}
			wantDependency(t, s, name, "mysql", types.ServiceConditionHealthy)
			continue
		}
		workers = append(workers, name)
		if cfg.Migrate {
			t.Errorf("%s migrates at start; the migrate service does that, once", name)
		}
		wantDependency(t, s, name, "migrate", types.ServiceConditionCompletedSuccessfully)
		wantDependency(t, s, name, "kafka", types.ServiceConditionHealthy)
		for _, b := range cfg.brokerList() {
			checkAddr(t, p, name, "KAFKA_BROKERS", b, "kafka")
			if !strings.Contains(env(p.Services["kafka"])["KAFKA_LISTENERS"], ":"+port(b)) {
				t.Errorf("%s: KAFKA_BROKERS %s: the broker has no listener on that port", name, b)
			}
		}
		if e["REDIS_ADDR"] != "" {
			checkAddr(t, p, name, "REDIS_ADDR", cfg.RedisAddr, "redis")
			wantDependency(t, s, name, "redis", types.ServiceConditionHealthy)
		}
	}
	if len(workers) != 2 {
		t.Errorf("workers %v, want two", workers)
	}
}

// The Compose file runs nothing as MySQL's root: the mysql service creates
// the two users at its first start with the init SQL file it mounts into
// /docker-entrypoint-initdb.d, the migrate service connects as
// stockflow_migrate and the workers as stockflow, with the passwords that
// file gives them; the workers' grants hold no DELETE and no DDL.
func TestComposeDatabaseUsers(t *testing.T) {
	p := loadCompose(t)
	mysqlSvc := p.Services["mysql"]
	if _, ok := env(mysqlSvc)["MYSQL_USER"]; ok {
		t.Error("mysql sets MYSQL_USER, which the image grants ALL on the database: create the users in the init SQL")
	}
	var initSQL []string
	for _, v := range mysqlSvc.Volumes {
		if strings.HasPrefix(v.Target, "/docker-entrypoint-initdb.d/") && strings.HasSuffix(v.Target, ".sql") {
			b, err := os.ReadFile(v.Source)
			if err != nil {
				t.Fatalf("mysql mounts %s at %s: %v", v.Source, v.Target, err)
			}
			initSQL = append(initSQL, string(b))
		}
	}
	if len(initSQL) == 0 {
		t.Fatal("mysql mounts no .sql file into /docker-entrypoint-initdb.d: nothing creates the users")
	}
	sql := strings.Join(strings.Fields(regexp.MustCompile(`(?m)--.*$`).ReplaceAllString(strings.Join(initSQL, "\n"), "")), " ")
	passwords := map[string]string{}
	for _, m := range regexp.MustCompile(`(?i)CREATE USER '([^']+)'@'[^']*' IDENTIFIED BY '([^']*)'`).FindAllStringSubmatch(sql, -1) {
		passwords[m[1]] = m[2]
	}
	grants := map[string][]string{}
	for _, m := range regexp.MustCompile(`(?i)GRANT (.+?) ON \S+ TO '([^']+)'`).FindAllStringSubmatch(sql, -1) {
		for _, priv := range strings.Split(m[1], ",") {
			grants[m[2]] = append(grants[m[2]], strings.ToUpper(strings.TrimSpace(priv)))
		}
	}

	users := map[string]string{}
	for name, s := range p.Services {
		if s.Image != stockworkerImage {
			continue
		}
		c, err := mysql.ParseDSN(env(s)["MYSQL_DSN"])
		if err != nil {
			t.Errorf("%s: MYSQL_DSN: %v", name, err)
			continue
		}
		want := workerDBUser
		if slices.Equal(s.Command, []string{"migrate"}) {
			want = migrateDBUser
		}
		if c.User != want {
			t.Errorf("%s connects as %q, want %s", name, c.User, want)
		}
		if pw, ok := passwords[c.User]; !ok || pw != c.Passwd {
			t.Errorf("%s: the init SQL creates no user %q with the password of its DSN", name, c.User)
		}
		users[name] = c.User
	}
	if len(users) == 0 {
		t.Fatal("no stockworker service")
	}
	for _, priv := range grants[workerDBUser] {
		if !slices.Contains([]string{"SELECT", "INSERT", "UPDATE"}, priv) {
			t.Errorf("the workers' user %s is granted %s: it needs SELECT, INSERT and UPDATE only", workerDBUser, priv)
		}
	}
	for _, priv := range []string{"SELECT", "INSERT", "UPDATE"} {
		if !slices.Contains(grants[workerDBUser], priv) {
			t.Errorf("the workers' user %s lacks %s", workerDBUser, priv)
		}
	}
	for _, priv := range []string{"CREATE", "ALTER", "INDEX"} {
		if !slices.Contains(grants[migrateDBUser], priv) {
			t.Errorf("the migration user %s lacks %s, which the migrations need", migrateDBUser, priv)
		}
	}
}

// wantDependency checks that service s starts after dep met condition.
func wantDependency(t *testing.T, s types.ServiceConfig, name, dep, condition string) {
	t.Helper()
	if got := s.DependsOn[dep].Condition; got != condition {
		t.Errorf("%s: depends_on %s: condition %q, want %q", name, dep, got, condition)
	}
}

// checkDSN checks that the DSN reaches the mysql service.
func checkDSN(t *testing.T, p *types.Project, name, dsn string) {
	t.Helper()
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Errorf("%s: MYSQL_DSN: %v", name, err)
		return
	}
	checkAddr(t, p, name, "MYSQL_DSN", c.Addr, "mysql")
}

// checkAddr checks that addr is host:port of the service want.
func checkAddr(t *testing.T, p *types.Project, name, setting, addr, want string) {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s: %s %q: %v", name, setting, addr, err)
		return
	}
	if _, ok := p.Services[host]; host != want || !ok {
		t.Errorf("%s: %s %q does not name the service %s", name, setting, addr, want)
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// Where Docker Compose v2 is installed, it accepts the file too. (Debian 12
// has no package of it, so the development machines and CI skip this.)
func TestComposeConfig(t *testing.T) {
	docker := os.Getenv("DOCKER")
	if docker == "" {
		docker = "docker"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := exec.CommandContext(ctx, docker, "compose", "version").Run(); err != nil {
		t.Skipf("no docker compose plugin here (%v); TestComposeFile validates the file with the same loader", err)
	}
	if out, err := exec.CommandContext(ctx, docker, "compose", "-f", composeFile, "config", "--quiet").CombinedOutput(); err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, out)
	}
}
