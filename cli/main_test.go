package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	// The bundled Caddyfile.example uses reverse_proxy, respond, header
	// and handle: the Caddyfile adapter needs the standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// Registers http.handlers.reset_guard, which the policy commands
	// decode a config's handler through.
	_ "github.com/resetguard/caddy-resetguard"
)

// TestMain runs the tests from the repository root. The commands resolve
// relative paths against the working directory, as Caddy does when it
// runs a config, and the fixtures they read (Caddyfile.example,
// testdata/cmd/Caddyfile.two) name their policies relative to the root,
// where the README's invocations run.
func TestMain(m *testing.M) {
	if err := os.Chdir(".."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

const (
	cmdBotInput    = "testdata/cmd/bot.json"
	cmdDeniedInput = "testdata/cmd/denied.json"
	cmdTwoSites    = "testdata/cmd/Caddyfile.two"
	cmdHandoffDir  = "testdata/policies/handoff"
	cmdHandoffQ    = "data.resetguard.handoff.decision"
)

func cmdPick(n int) *int { return &n }

// cmdWriteFile writes a fixture into a fresh temporary directory.
func cmdWriteFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func cmdReadFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runCommand runs the registered reset-guard command with args, as the
// binary does below its root command: flag parsing, positional arguments
// and the errors Caddy's wrapper turns into the process's exit status.
func runCommand(t *testing.T, args ...string) (stdout, stderr *bytes.Buffer, err error) {
	t.Helper()
	return runCommandIn(t, "", args...)
}

// runCommandIn is runCommand with stdin.
func runCommandIn(t *testing.T, stdin string, args ...string) (stdout, stderr *bytes.Buffer, err error) {
	t.Helper()
	reg, ok := caddycmd.Commands()["reset-guard"]
	if !ok {
		t.Fatal(`the "reset-guard" command is not registered with caddycmd`)
	}
	root := &cobra.Command{Use: "resetguard", SilenceUsage: true}
	rg := &cobra.Command{Use: reg.Name, Short: reg.Short}
	reg.CobraFunc(rg)
	root.AddCommand(rg)
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(append([]string{"reset-guard"}, args...))
	return stdout, stderr, root.Execute()
}
