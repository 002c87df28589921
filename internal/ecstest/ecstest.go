// Package ecstest checks documents against Elastic Common Schema field
// definitions: the entries of ECS's published ecs_flat.yml that a
// resetguard.audit/v1 record uses, kept in testdata/ecs. Tests of the audit
// record, the handler and the integration suite share it, so that every
// record they produce is held to ECS as Elastic defines it, not to our
// reading of it.
package ecstest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Version is the ECS version of the excerpt, the version a record's
// ecs.version must name.
const Version = "8.11.0"

// Excerpt is the excerpt's path from the module root.
const Excerpt = "testdata/ecs/ecs_flat_" + Version + "_excerpt.yml"

// NotECS are the top-level keys of an audit line that are not ECS fields
// and are not checked: the record's own namespace and schema name, and
// Caddy's log envelope (which a pipeline renames, see docs/audit.md).
var NotECS = []string{"resetguard", "schema", "level", "ts", "logger", "msg"}

// Field is one ecs_flat.yml entry, as far as a check needs it.
type Field struct {
	Type          string         `yaml:"type"`
	Normalize     []string       `yaml:"normalize"`
	IgnoreAbove   int            `yaml:"ignore_above"`
	Required      bool           `yaml:"required"`
	AllowedValues []AllowedValue `yaml:"allowed_values"`
}

// AllowedValue is one of a field's allowed values; for event.category it
// names the event.type values ECS expects with it.
type AllowedValue struct {
	Name               string   `yaml:"name"`
	ExpectedEventTypes []string `yaml:"expected_event_types"`
}

// Schema is the loaded excerpt: field definitions by flat name.
type Schema struct {
	Fields map[string]Field
}

// Load reads an ecs_flat.yml (or an excerpt of it).
func Load(path string) (*Schema, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var fields map[string]Field
	if err := yaml.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("%s: no field definitions", path)
	}
	return &Schema{Fields: fields}, nil
}

// Allowed returns the names of f's allowed values; nil when any value is.
func (f Field) Allowed() []string {
	var out []string
	for _, v := range f.AllowedValues {
		out = append(out, v.Name)
	}
	return out
}

// ExpectedTypes returns the event.type values ECS expects with category
// c, and whether it lists any.
func (s *Schema) ExpectedTypes(c string) ([]string, bool) {
	for _, v := range s.Fields["event.category"].AllowedValues {
		if v.Name == c {
			return v.ExpectedEventTypes, len(v.ExpectedEventTypes) > 0
		}
	}
	return nil, false
}

// Check returns every way doc (a JSON object decoded with encoding/json,
// numbers as float64 or json.Number) breaks the ECS definitions:
//
//   - every field outside NotECS must be an ECS field of the excerpt, at
//     the place ECS defines it (a leaf, not an object);
//   - its value must have the field's type: keyword, wildcard and
//     match_only_text a string no longer than ignore_above; long an
//     integer in int64; date an RFC 3339 string; ip an IPv4 or IPv6
//     address without zone (Elasticsearch rejects a whole document whose
//     ip field does not parse);
//   - a field ECS normalises to an array is an array, any other a single
//     value (ECS allows arrays anywhere; a single value is our rule);
//   - a value of a field with allowed values is one of them;
//   - every event.type value is among the expected_event_types of every
//     event.category value (the stricter reading of ECS's pairing; see
//     docs/audit.md);
//   - the fields ECS marks required (@timestamp, ecs.version) are present,
//     and ecs.version is Version.
func (s *Schema) Check(doc map[string]any) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	leaves := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			name := prefix + k
			if prefix == "" && slices.Contains(NotECS, k) {
				continue
			}
			if sub, ok := v.(map[string]any); ok {
				if _, leaf := s.Fields[name]; leaf {
					bad("%s: ECS defines a %s value, the record has an object", name, s.Fields[name].Type)
					continue
				}
				walk(name+".", sub)
				continue
			}
			leaves[name] = v
		}
	}
	walk("", doc)

	names := make([]string, 0, len(leaves))
	for n := range leaves {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		def, ok := s.Fields[name]
		if !ok {
			bad("%s: not an ECS %s field (a guard-specific field belongs under resetguard)", name, Version)
			continue
		}
		errs = append(errs, s.checkValue(name, def, leaves[name])...)
	}
	for name, def := range s.Fields {
		if _, ok := leaves[name]; def.Required && !ok {
			bad("%s: required by ECS, absent", name)
		}
	}
	if v, ok := leaves["ecs.version"]; ok && v != Version {
		bad("ecs.version %v, want %s (the version of the definitions checked against)", v, Version)
	}
	errs = append(errs, s.checkPairs(leaves)...)
	return errs
}

func (s *Schema) checkValue(name string, def Field, v any) []error {
	var errs []error
	arr, isArr := v.([]any)
	switch array := slices.Contains(def.Normalize, "array"); {
	case array && !isArr:
		errs = append(errs, fmt.Errorf("%s: ECS normalises it to an array, the record has %T", name, v))
		arr = []any{v}
	case !array && isArr:
		errs = append(errs, fmt.Errorf("%s: a single value expected, the record has an array", name))
	case !isArr:
		arr = []any{v}
	}
	allowed := def.Allowed()
	for _, e := range arr {
		if err := checkType(def, e); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if s, ok := e.(string); ok && allowed != nil && !slices.Contains(allowed, s) {
			errs = append(errs, fmt.Errorf("%s: %q is not one of ECS's allowed values %v", name, s, allowed))
		}
	}
	return errs
}

func checkType(def Field, v any) error {
	switch def.Type {
	case "keyword", "wildcard", "match_only_text", "constant_keyword", "text":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("type %s wants a string, the record has %T %v", def.Type, v, v)
		}
		if def.IgnoreAbove > 0 && utf8.RuneCountInString(s) > def.IgnoreAbove {
			return fmt.Errorf("%d characters, over ignore_above %d: it would not be indexed", utf8.RuneCountInString(s), def.IgnoreAbove)
		}
	case "long":
		if !isInt64(v) {
			return fmt.Errorf("type long wants an integer, the record has %T %v", v, v)
		}
	case "date":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("type date: the record writes dates as RFC 3339 strings, it has %T %v", v, v)
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("type date: %q is not RFC 3339: %v", s, err)
		}
	case "ip":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("type ip wants a string, the record has %T %v", v, v)
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("type ip: %q is not an IPv4 or IPv6 address without zone", s)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("type boolean, the record has %T %v", v, v)
		}
	default:
		// A field of a type this check does not know yet must not pass
		// unchecked: teach checkType the type first.
		return fmt.Errorf("type %s is not checked by ecstest", def.Type)
	}
	return nil
}

func isInt64(v any) bool {
	switch n := v.(type) {
	case json.Number:
		_, err := strconv.ParseInt(string(n), 10, 64)
		return err == nil
	case float64:
		// encoding/json's default: exact only up to 2^53.
		return n == math.Trunc(n) && math.Abs(n) <= 1<<53
	case int, int32, int64:
		return true
	}
	return false
}

// checkPairs holds event.type to the categories' expected types.
func (s *Schema) checkPairs(leaves map[string]any) []error {
	cats, types := strings1(leaves["event.category"]), strings1(leaves["event.type"])
	var errs []error
	for _, c := range cats {
		expected, listed := s.ExpectedTypes(c)
		if !listed {
			continue
		}
		for _, t := range types {
			if !slices.Contains(expected, t) {
				errs = append(errs, fmt.Errorf("event.type %q is not an expected type of event.category %q (ECS expects %v)", t, c, expected))
			}
		}
	}
	return errs
}

func strings1(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// Join formats errs one per line, for a test failure.
func Join(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n\t")
		b.WriteString(e.Error())
	}
	return b.String()
}
