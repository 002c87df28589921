package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/resetguard/caddy-resetguard/policy"
)

// handlerModuleID is the Caddy module whose configs the policy commands
// read. They decode it through Caddy's module registry so that this
// package need not import the handler's (which imports this one).
const handlerModuleID = "http.handlers.reset_guard"

// handlerName is the "handler" value that marks a reset_guard handler
// object in a JSON config: the last label of handlerModuleID.
const handlerName = "reset_guard"

// PolicySource is what a reset_guard handler config tells the policy
// commands. The handler's module implements it, so that `policy eval`
// evaluates exactly the sources and query the handler would load.
type PolicySource interface {
	// PolicySource is the handler's local policy sources, query and
	// evaluation timeout, as its policy engine is configured with them.
	PolicySource() policy.Config
	// RemoteBundleURL is the bundle service the handler polls, "" when
	// it polls none: the commands never contact it, and say so.
	RemoteBundleURL() string
}

// foundHandler is one reset_guard handler object in a JSON config.
type foundHandler struct {
	path string // where in the config, e.g. apps.http.servers.srv0.routes[0].handle[0]
	raw  json.RawMessage
}

// handlerFromConfig loads a Caddy config, adapting it if need be, and
// decodes the reset_guard handler it holds (the index-th of several).
func handlerFromConfig(file, adapter string, index *int, stdin io.Reader, stderr io.Writer) (PolicySource, error) {
	body, err := loadConfig(file, adapter, stdin, stderr)
	if err != nil {
		return nil, err
	}
	var found []foundHandler
	if err := findResetGuards(body, "", &found); err != nil {
		return nil, fmt.Errorf("reading config %s as JSON: %w", file, err)
	}
	var pick foundHandler
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("no reset_guard handler in %s", file)
	case index != nil && *index >= len(found):
		return nil, fmt.Errorf("--handler %d: %s has %d reset_guard handler(s), numbered from 0:\n%s", *index, file, len(found), listHandlers(found))
	case index != nil:
		pick = found[*index]
	case len(found) > 1:
		return nil, fmt.Errorf("found %d reset_guard handlers in %s; pick one with --handler N (0-based):\n%s", len(found), file, listHandlers(found))
	default:
		pick = found[0]
	}
	h, err := decodeHandler(pick.raw)
	if err != nil {
		return nil, fmt.Errorf("%s: reset_guard handler at %s: %w", file, pick.path, err)
	}
	return h, nil
}

// loadConfig reads a Caddy config ("-": stdin) and returns it as JSON,
// adapted by the named adapter or, when none is named, the one its file
// name suggests.
func loadConfig(file, adapter string, stdin io.Reader, stderr io.Writer) ([]byte, error) {
	var (
		body []byte
		err  error
	)
	if file == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if adapter == "" {
		adapter = guessAdapter(file)
	}
	if adapter == "json" {
		return body, nil
	}
	a := caddyconfig.GetAdapter(adapter)
	if a == nil {
		return nil, fmt.Errorf("unrecognized config adapter: %s", adapter)
	}
	adapted, warnings, err := a.Adapt(body, map[string]any{"filename": file})
	if err != nil {
		return nil, fmt.Errorf("adapting %s with %s: %w", file, adapter, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w.String())
	}
	return adapted, nil
}

// guessAdapter follows Caddy's convention: a file named like a Caddyfile
// is one, anything else is JSON.
func guessAdapter(file string) string {
	base := strings.ToLower(filepath.Base(file))
	if strings.Contains(base, "caddyfile") && filepath.Ext(base) != ".json" {
		return "caddyfile"
	}
	return "json"
}

// listHandlers numbers the handlers found so that an operator can pick one
// with --handler; one that does not decode is still listed, its policy "?".
func listHandlers(found []foundHandler) string {
	var b strings.Builder
	for i, f := range found {
		paths, query := "?", ""
		if h, err := decodeHandler(f.raw); err == nil {
			cfg := h.PolicySource()
			paths = strings.Join(cfg.Paths, " ")
			query = cfg.Query
		}
		if query == "" {
			query = policy.DefaultQuery
		}
		fmt.Fprintf(&b, "  %d: %s (policy %s, query %s)\n", i, f.path, paths, query)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// decodeHandler decodes a handler object as Caddy does: through the module
// registry, the module name key removed, then strictly, so a misspelt
// option is an error here too.
func decodeHandler(raw json.RawMessage) (PolicySource, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "handler")
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	info, err := caddy.GetModule(handlerModuleID)
	if err != nil {
		return nil, fmt.Errorf("this binary lacks the reset_guard handler: %w", err)
	}
	mod := info.New()
	if err := caddy.StrictUnmarshalJSON(b, mod); err != nil {
		return nil, err
	}
	src, ok := mod.(PolicySource)
	if !ok {
		return nil, fmt.Errorf("module %s (%T) does not describe its policy sources", handlerModuleID, mod)
	}
	return src, nil
}

// findResetGuards appends every object with "handler": "reset_guard" below
// raw, in document order (a parent before what it contains).
func findResetGuards(raw json.RawMessage, path string, found *[]foundHandler) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return errors.New("empty document")
	}
	switch raw[0] {
	case '{':
		return findInObject(raw, path, found)
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return err
		}
		for i, it := range items {
			if err := findResetGuards(it, path+"["+strconv.Itoa(i)+"]", found); err != nil {
				return err
			}
		}
	default:
		if !json.Valid(raw) {
			return errors.New("invalid JSON")
		}
	}
	return nil
}

// findInObject is findResetGuards for one JSON object. It reads the
// members in document order, which a map would lose, so that handlers are
// numbered as they appear in the config.
func findInObject(raw json.RawMessage, path string, found *[]foundHandler) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return err
	}
	type member struct {
		key string
		val json.RawMessage
	}
	var members []member
	guard := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return err
		}
		if key == "handler" {
			var name string
			if json.Unmarshal(val, &name) == nil && name == handlerName {
				guard = true
			}
		}
		members = append(members, member{key, val})
	}
	if guard {
		p := path
		if p == "" {
			p = "(top level)"
		}
		*found = append(*found, foundHandler{path: p, raw: raw})
	}
	for _, m := range members {
		p := m.key
		if path != "" {
			p = path + "." + m.key
		}
		if err := findResetGuards(m.val, p, found); err != nil {
			return err
		}
	}
	return nil
}
