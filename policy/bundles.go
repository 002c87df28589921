package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

// What a bundle can do that a policy file cannot, and what the gateway
// does about it:
//
//   - its manifest roots claim parts of data: on activation everything
//     under them is replaced, so a bundle beside policy files could
//     replace the files' data (say, the list of bots) or add rules to the
//     files' packages (an unconditional allow). A bundle's roots must
//     leave out every package and data path of the files; a bundle
//     without roots claims all of data, so it cannot sit beside files.
//     Bundles among themselves are kept apart by OPA's own check of
//     overlapping roots.
//   - Wasm modules with manifest entrypoints: OPA would answer those
//     paths from compiled Wasm instead of Rego, outside the strict
//     evaluation and out of sight of `policy test`. Refused.
//   - delta bundles patch the data of a previous activation; the gateway
//     compiles every policy afresh, so a patch would apply to nothing.
//     Refused.
//   - *_test.rego modules: policy files skip them, so a bundle does too,
//     so that a test's helper rules cannot decide in the gateway.
//
// A gzipped tarball inside a policy directory is loaded by OPA's file
// loader as a bundle and merged, roots ignored; a stale `opa build`
// output left there would add its rules. refuseBundleFiles refuses it.

// checkBundle refuses what a bundle could do that policy files cannot.
// files are the policy files it is combined with (nil: none).
func checkBundle(name string, b *bundle.Bundle, files *loader.Result) error {
	if len(b.WasmModules) > 0 || len(b.Manifest.WasmResolvers) > 0 {
		return fmt.Errorf("policy: bundle %s carries Wasm modules: refused, a decision must come from Rego evaluated with strict built-in errors", name)
	}
	if b.Type() == bundle.DeltaBundleType {
		return fmt.Errorf("policy: bundle %s is a delta bundle: refused, the gateway activates complete bundles only", name)
	}
	if files == nil {
		return nil
	}
	for _, root := range bundleRoots(b) {
		if what := filesUnder(files, root); what != "" {
			shown := "data." + strings.ReplaceAll(root, "/", ".")
			if root == "" {
				shown = "all of data (it has no manifest roots)"
			}
			return fmt.Errorf("policy: bundle %s claims %s, where the policy files define %s: "+
				"its rules would join the files' package and its data replace theirs; "+
				"give the bundle manifest roots that leave the files' packages and data out", name, shown, what)
		}
	}
	return nil
}

// bundleRoots are the bundle's manifest roots; none declared is the whole
// of data, as OPA reads it.
func bundleRoots(b *bundle.Bundle) []string {
	if b.Manifest.Roots == nil {
		return []string{""}
	}
	return *b.Manifest.Roots
}

// filesUnder names what the policy files define at, above or below root
// ("" when nothing): a package or a data document.
func filesUnder(files *loader.Result, root string) string {
	seg := rootSegments(root)
	for _, name := range sortedKeys(files.Modules) {
		pkg := files.Modules[name].Parsed.Package.Path
		if overlaps(seg, refSegments(pkg)) {
			return fmt.Sprintf("%s (%s)", pkg, name)
		}
	}
	if dataAt(files.Documents, seg) {
		return "data documents"
	}
	return ""
}

func rootSegments(root string) []string {
	if root == "" {
		return nil
	}
	return strings.Split(root, "/")
}

// refSegments are the keys of a package path below data.
func refSegments(ref ast.Ref) []string {
	seg := make([]string, 0, len(ref))
	for _, t := range ref[1:] {
		if s, ok := t.Value.(ast.String); ok {
			seg = append(seg, string(s))
		} else {
			seg = append(seg, t.Value.String())
		}
	}
	return seg
}

// overlaps reports whether one path is a prefix of the other.
func overlaps(a, b []string) bool {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// dataAt reports whether docs hold anything at seg, or a non-object value
// on the way there (writing below it would replace it).
func dataAt(docs map[string]any, seg []string) bool {
	if len(seg) == 0 {
		return len(docs) > 0
	}
	var cur any = docs
	for _, k := range seg {
		m, ok := cur.(map[string]any)
		if !ok {
			return true
		}
		if cur, ok = m[k]; !ok {
			return false
		}
	}
	return true
}

// withoutTests is b without its *_test.rego modules, as policy files are
// loaded. b itself is left as it is: it may be shared.
func withoutTests(b *bundle.Bundle) *bundle.Bundle {
	keep := make([]bundle.ModuleFile, 0, len(b.Modules))
	for _, m := range b.Modules {
		if !strings.HasSuffix(m.Path, "_test.rego") {
			keep = append(keep, m)
		}
	}
	if len(keep) == len(b.Modules) {
		return b
	}
	cp := *b
	cp.Modules = keep
	return &cp
}

// bundleDigest writes everything a bundle is built from: its manifest
// (roots, revision, Wasm entrypoints), modules and data. A manifest
// revision alone may stay the same across edits.
func bundleDigest(w io.Writer, b *bundle.Bundle) error {
	manifest, err := json.Marshal(b.Manifest)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "manifest=%s\n", manifest)
	for _, m := range b.Modules {
		fmt.Fprintf(w, "module=%s %d\n", m.Path, len(m.Raw))
		_, _ = w.Write(m.Raw)
	}
	for _, m := range b.WasmModules {
		fmt.Fprintf(w, "wasm=%s %d\n", m.Path, len(m.Raw))
		_, _ = w.Write(m.Raw)
	}
	data, err := json.Marshal(b.Data) // map keys sorted: stable
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// errBundleFile marks a tarball found among policy files.
var errBundleFile = errors.New("a bundle among the policy files")

// RefuseBundleFiles refuses a gzipped tarball (an OPA bundle) among policy
// files or inside policy directories. OPA's file loader would merge its
// modules and data into the files, its manifest roots ignored, so a stale
// `opa build` output beside the sources would silently add its rules. A
// bundle is configured as one (policy.bundles), where its roots are
// checked.
func RefuseBundleFiles(paths []string) error {
	for _, root := range paths {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // the loader reports unreadable paths itself
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".tar.gz") {
				return fmt.Errorf("policy: %s is %w: name it under bundles (policy.bundles, --bundle), or move it out of the policy directory", path, errBundleFile)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
