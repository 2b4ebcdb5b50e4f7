package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction: its keyword in upper case and
// the rest of it, continuation lines joined.
type instruction struct {
	cmd, args string
}

// parseDockerfile splits a Dockerfile into instructions, dropping comments
// and joining lines that end in a backslash. It is enough for our own two
// files, not a general parser.
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return out
}

// finalStage is what comes after the last FROM: what the image is made of.
func finalStage(ins []instruction) []instruction {
	last := 0
	for i, in := range ins {
		if in.cmd == "FROM" {
			last = i
		}
	}
	return ins[last:]
}

// metadata is the final stage's instructions that shape the image's
// configuration, which both ways of building must give alike.
func metadata(stage []instruction) map[string][]string {
	m := map[string][]string{}
	for _, in := range stage {
		switch in.cmd {
		case "ARG", "LABEL", "USER", "EXPOSE", "ENTRYPOINT", "CMD":
			m[in.cmd] = append(m[in.cmd], in.args)
		}
	}
	return m
}

// The two Dockerfiles build the same image: the same labels, build
// arguments, user, port and entrypoint; both commands in /usr/local/bin;
// static binaries; and no `# syntax=` directive, which would make BuildKit
// pull a frontend image (there is no registry on the development machines).
func TestDockerfilesAgree(t *testing.T) {
	source := parseDockerfile(t, "Dockerfile")
	prebuilt := parseDockerfile(t, "Dockerfile.prebuilt")
	for _, f := range []string{"Dockerfile", "Dockerfile.prebuilt"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`(?im)^#\s*syntax\s*=`).Match(b) {
			t.Errorf("%s has a # syntax= directive: BuildKit would pull a frontend image", f)
		}
	}

	got, want := metadata(finalStage(prebuilt)), metadata(finalStage(source))
	for _, k := range []string{"ARG", "LABEL", "USER", "EXPOSE", "ENTRYPOINT", "CMD"} {
		if !slices.Equal(got[k], want[k]) {
			t.Errorf("%s differs:\n  Dockerfile:          %q\n  Dockerfile.prebuilt: %q", k, want[k], got[k])
		}
	}
	if u := want["USER"]; !slices.Equal(u, []string{"65532:65532"}) {
		t.Errorf("USER %q, want the numeric 65532:65532", u)
	}
	if e := want["ENTRYPOINT"]; !slices.Equal(e, []string{`["/usr/local/bin/stockworker"]`}) {
		t.Errorf("ENTRYPOINT %q, want stockworker in exec form", e)
	}
	label := strings.Join(want["LABEL"], " ")
	for _, k := range []string{"source", "version", "revision", "licenses", "title", "description"} {
		if !strings.Contains(label, "org.opencontainers.image."+k+"=") {
			t.Errorf("no label org.opencontainers.image.%s", k)
		}
	}

	if f := finalStage(prebuilt)[0].args; f != "scratch" {
		t.Errorf("Dockerfile.prebuilt is FROM %s, want scratch (nothing to pull)", f)
	}
	var build, copyBins string
	for _, in := range source {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
		if in.cmd == "COPY" && strings.Contains(in.args, "--from=build") {
			copyBins = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/stockworker", "./cmd/orderctl"} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile's go build %q lacks %s", build, want)
		}
	}
	for _, want := range []string{"stockworker", "orderctl", "/usr/local/bin/"} {
		if !strings.Contains(copyBins, want) {
			t.Errorf("Dockerfile's COPY %q lacks %s", copyBins, want)
		}
	}
}
