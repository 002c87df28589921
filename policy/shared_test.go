package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestSharedEngineAcrossConfigs: a second config with the same policy
// (as during a Caddy reload, which provisions the new config before the
// old one is cleaned up) gets the compiled engine of the first; a changed
// file, query, timeout or network setting gets its own; and once every
// holder has let go a new config compiles afresh.
func TestSharedEngineAcrossConfigs(t *testing.T) {
	dir := t.TempDir()
	write := func(allow string) {
		t.Helper()
		src := "package shared\n\nallow := " + allow + "\n"
		if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("true")
	ctx := context.Background()
	cfg := Config{Paths: []string{dir}, Query: "data.shared.allow"}
	open := func(cfg Config) *Manager {
		t.Helper()
		m, err := NewManager(ctx, cfg, nil, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	old := open(cfg)
	reload := open(cfg)
	if old.Engine().compiled != reload.Engine().compiled {
		t.Fatal("a reload with the same policy compiled it again")
	}
	otherQuery := open(Config{Paths: []string{dir}, Query: "data.shared"})
	otherTimeout := open(Config{Paths: []string{dir}, Query: "data.shared.allow", Timeout: 5 * DefaultTimeout})
	// Other capabilities: the same source compiles to another policy.
	otherNetwork := open(Config{Paths: []string{dir}, Query: "data.shared.allow", AllowNetworkBuiltins: true})
	for name, m := range map[string]*Manager{"query": otherQuery, "timeout": otherTimeout, "network setting": otherNetwork} {
		if m.Engine().compiled == old.Engine().compiled {
			t.Errorf("another %s shares the engine", name)
		}
		m.Stop(ctx)
	}

	write("false")
	changed := open(cfg)
	if changed.Engine().compiled == old.Engine().compiled || changed.Engine().Revision() == old.Engine().Revision() {
		t.Fatal("an edited policy file did not get a new engine and revision")
	}
	d, err := changed.Engine().Eval(ctx, nil)
	if err != nil || d.Allow {
		t.Fatalf("edited policy decides %+v, %v; want a deny", d, err)
	}
	changed.Stop(ctx)

	write("true")
	old.Stop(ctx)
	again := open(cfg)
	if again.Engine().compiled != reload.Engine().compiled {
		t.Fatal("the engine was dropped while a config still held it")
	}
	reload.Stop(ctx)
	again.Stop(ctx)
	fresh := open(cfg)
	defer fresh.Stop(ctx)
	if fresh.Engine().compiled == old.Engine().compiled {
		t.Fatal("the engine outlived every config that held it")
	}
}
