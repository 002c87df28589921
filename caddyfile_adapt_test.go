package resetguard_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	resetguard "github.com/resetguard/caddy-resetguard"
)

// TestCaddyfileAdapt adapts every testdata/caddyfile_adapt/*.caddyfiletest
// as Caddy's own caddytest/integration/caddyfile_adapt_test.go does: one
// file per group of directive options, so a change to the parser or to a
// JSON tag shows as a diff of the file that covers it. A file holds a
// Caddyfile, a line of ten dashes, then either the expected JSON or (an
// invalid_* file) the expected adapt error. An adapted config must pass
// Validate, except in a refused_* file, whose third part is the error
// Validate gives: the Caddyfile parser only converts tokens, and a value
// out of range is refused at load, as the same value in JSON is.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d adapt tests, want the option groups and invalid forms", len(files))
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(string(data), "----------")
			if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3) != strings.HasPrefix(name, "refused_") {
				t.Fatalf("%s: want a Caddyfile and an expectation separated by one line of ten dashes (a refused_* file: and the validation error)", name)
			}
			caddyfile, expected := strings.TrimSpace(parts[0])+"\n", strings.TrimSpace(parts[1])
			if !strings.HasPrefix(expected, "{") {
				expectAdaptError(t, name, caddyfile, expected)
				return
			}
			if !caddytest.CompareAdapt(t, name, caddyfile, "caddyfile", expected) {
				t.Errorf("%s: adapted JSON differs (diff above)", name)
			}
			want := ""
			if len(parts) == 3 {
				want = strings.TrimSpace(parts[2])
			}
			expectValidate(t, []byte(expected), want)
		})
	}
}

func expectAdaptError(t *testing.T, name, caddyfile, expected string) {
	t.Helper()
	if !strings.HasPrefix(name, "invalid_") {
		t.Fatalf("%s: an expected error belongs in an invalid_*.caddyfiletest", name)
	}
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err == nil {
		t.Fatalf("%s adapted; want the error %q", name, expected)
	}
	if !strings.Contains(err.Error(), expected) {
		t.Errorf("error:\n%s\nwant it to contain:\n%s", err, expected)
	}
}

// expectValidate decodes the reset_guard handlers of an adapted config as
// Caddy does (strictly, without the "handler" key) and checks that
// Validate accepts them (want "") or refuses them with exactly want.
func expectValidate(t *testing.T, adapted []byte, want string) {
	t.Helper()
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []map[string]json.RawMessage `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, srv := range cfg.Apps.HTTP.Servers {
		for _, route := range srv.Routes {
			for _, handler := range route.Handle {
				if string(handler["handler"]) != `"reset_guard"` {
					continue
				}
				found++
				delete(handler, "handler")
				raw, err := json.Marshal(handler)
				if err != nil {
					t.Fatal(err)
				}
				var h resetguard.Handler
				if err := caddy.StrictUnmarshalJSON(raw, &h); err != nil {
					t.Fatalf("decoding the adapted handler: %v", err)
				}
				err = h.Validate()
				if got := fmt.Sprint(err); (err == nil) != (want == "") || (err != nil && got != want) {
					t.Errorf("Validate() = %v\nwant %q", err, want)
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no reset_guard handler in the adapted config")
	}
}
