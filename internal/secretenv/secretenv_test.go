package secretenv_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/internal/secretenv"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The variable, or the file its _FILE names without one trailing line break;
// both is an error; no error and no print shows the secret.
func TestValue(t *testing.T) {
	const s = "Pa55-Secret-1"
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"variable":   {map[string]string{"PW": s}, s},
		"file":       {map[string]string{"PW_FILE": write(t, s+"\n")}, s},
		"file, CRLF": {map[string]string{"PW_FILE": write(t, s+"\r\n")}, s},
		"file as is": {map[string]string{"PW_FILE": write(t, s+"\n\n")}, s + "\n"},
		"neither":    {nil, ""},
	} {
		v := secretenv.Lookup(env(tc.env), "PW")
		got, err := v.Value()
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, tc.want)
		}
		if v.Set() != (tc.env != nil) {
			t.Errorf("%s: Set() = %v", name, v.Set())
		}
		wrapped := struct{ v secretenv.Var }{v}
		for _, printed := range []string{fmt.Sprint(v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v), fmt.Sprintf("%+v %#v", wrapped, wrapped)} {
			if strings.Contains(printed, "Secret-1") {
				t.Errorf("%s: printing shows the secret: %s", name, printed)
			}
		}
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"both":    {map[string]string{"PW": s, "PW_FILE": write(t, s)}, "PW and PW_FILE are both set: set one"},
		"missing": {map[string]string{"PW_FILE": filepath.Join(t.TempDir(), "none")}, "PW_FILE: open "},
		"empty":   {map[string]string{"PW_FILE": write(t, "\n")}, "PW_FILE: "},
	} {
		_, err := secretenv.Lookup(env(tc.env), "PW").Value()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "Secret-1") {
			t.Errorf("%s: %v, want %q and never the secret", name, err, tc.want)
		}
	}
}
