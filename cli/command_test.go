package cli_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// TestCommandRegistered pins the command's public shape: one Caddy
// command named after the module, with the tools as its subcommands. Caddy
// panics at start-up when two plugins register one name, so the generic
// top-level "policy" and "audit" the module used to register must stay
// gone.
func TestCommandRegistered(t *testing.T) {
	cmds := caddycmd.Commands()
	c, ok := cmds["reset-guard"]
	if !ok {
		t.Fatal(`the "reset-guard" command is not registered with caddycmd`)
	}
	if c.Name != "reset-guard" || c.CobraFunc == nil || c.Short == "" || c.Long == "" {
		t.Fatalf("reset-guard command incomplete: %+v", c)
	}
	for _, name := range []string{"policy", "audit"} {
		if _, ok := cmds[name]; ok {
			t.Errorf("a top-level %q command is registered; the tools belong under reset-guard", name)
		}
	}
	cmd := &cobra.Command{Use: c.Name}
	c.CobraFunc(cmd)
	var paths []string
	for _, group := range cmd.Commands() {
		if group.Runnable() {
			t.Errorf("%s runs on its own; want it to only group subcommands", group.CommandPath())
		}
		for _, sub := range group.Commands() {
			if !sub.Runnable() {
				t.Errorf("%s does not run", sub.CommandPath())
			}
			paths = append(paths, sub.CommandPath())
		}
	}
	slices.Sort(paths)
	want := []string{"reset-guard audit verify", "reset-guard policy eval", "reset-guard policy test"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("subcommands = %q, want %q", paths, want)
	}
}

// TestPolicyCommandCobra runs the commands through their cobra wiring, as
// the binary does: flag names, positional paths and the exit statuses
// Caddy's wrapper turns into the process's.
func TestPolicyCommandCobra(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for exit status 0
		want    []string
	}{
		{
			name: "eval allowed",
			args: []string{"eval", "--config", "Caddyfile.example", "--input", cmdBotInput, "--repeat", "3"},
			want: []string{`"allow": true`, `"evaluations": 2`},
		},
		{
			name:    "eval denied exits 2",
			args:    []string{"eval", "-p", cmdHandoffDir, "-q", cmdHandoffQ, "-i", cmdDeniedInput},
			wantErr: "exiting with status 2",
			want:    []string{`"allow": false`, `"session_protected"`},
		},
		{
			name:    "eval --handler",
			args:    []string{"eval", "-c", cmdTwoSites, "--handler", "1", "-i", cmdDeniedInput},
			want:    []string{`"allow": true`, `"data.resetguard.test.decision"`},
			wantErr: "",
		},
		{
			name:    "eval error exits 1",
			args:    []string{"eval", "-c", cmdTwoSites, "-i", cmdBotInput},
			wantErr: "found 2 reset_guard handlers",
		},
		{
			name: "test verbose with paths as arguments",
			args: []string{"test", "-v", "--timeout", "30s", cmdHandoffDir},
			want: []string{"PASS  data.resetguard.handoff_test.", "PASS: "},
		},
		{
			name:    "test failing exits 2",
			args:    []string{"test", "--run", "agent", "testdata/cmd/failing"},
			wantErr: "exiting with status 2",
			want:    []string{"FAIL: 1/1"},
		},
		{
			name:    "test without paths",
			args:    []string{"test"},
			wantErr: "requires at least 1 arg",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCommand(t, append([]string{"policy"}, tt.args...)...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v; stdout:\n%s", err, stdout.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q; stdout:\n%s", err, tt.wantErr, stdout.String())
			}
			if strings.Contains(tt.wantErr, "status 2") && stderr.Len() != 0 {
				// A verdict is not an error: cobra must not add "Error: exiting with status 2".
				t.Errorf("stderr on a verdict: %s", stderr.String())
			}
			for _, s := range tt.want {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout does not contain %q:\n%s", s, stdout.String())
				}
			}
		})
	}
}
