package resetguard_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdapt adapts every testdata/caddyfile_adapt/*.caddyfiletest
// (a Caddyfile, a line of ten dashes, then the expected JSON or, for an
// invalid form, the expected error text), as Caddy's own
// caddytest/integration/caddyfile_adapt_test.go does: one file per group
// of directive options, so a change to the parser or to a JSON tag shows
// as a diff of the file that covers it.
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
			if len(parts) != 2 {
				t.Fatalf("%s: want a Caddyfile and an expectation separated by one line of ten dashes", name)
			}
			caddyfile, expected := strings.TrimSpace(parts[0])+"\n", strings.TrimSpace(parts[1])
			if strings.HasPrefix(expected, "{") {
				if !caddytest.CompareAdapt(t, name, caddyfile, "caddyfile", expected) {
					t.Errorf("%s: adapted JSON differs (diff above)", name)
				}
				return
			}
			if !strings.HasPrefix(name, "invalid_") {
				t.Fatalf("%s: an expected error belongs in an invalid_*.caddyfiletest", name)
			}
			_, _, err = caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
			if err == nil {
				t.Fatalf("%s adapted; want the error %q", name, expected)
			}
			if !strings.Contains(err.Error(), expected) {
				t.Errorf("error:\n%s\nwant it to contain:\n%s", err, expected)
			}
		})
	}
}
