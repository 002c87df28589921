package classify

import (
	"slices"
	"strings"
	"testing"
)

// routePattern reports whether segs ends in a documented reset route
// (REST or Agents) or holds the Chat service (SOAP), independently of
// Path's own checks.
func routePattern(segs []string) (Route, bool) {
	segs = lowered(segs)
	n := len(segs)
	if n < 5 {
		if slices.Contains(segs, "chat.svc") {
			return SOAP, true
		}
		return None, false
	}
	tail := segs[n-5:]
	// Any API version: the backend's router takes v1, v2, … alike.
	if tail[0] == "api" && tail[2] == "chatsession" && tail[4] == "reset" {
		return REST, true
	}
	if tail[0] == "api" && slices.Equal(tail[2:], []string{"agents", "chat", "resetchatsession"}) {
		return Agents, true
	}
	if slices.Contains(segs, "chat.svc") {
		return SOAP, true
	}
	return None, false
}

// allReadings is every reading of p, whatever its features: a superset
// of what eachReading tries.
func allReadings(p string) []reading {
	all := features{query: true, params: true, empty: true, paren: true, trailing: true, ambiguousDots: true, dotdot: true}
	return all.readings(len(decodings(p)))
}

func lowered(segs []string) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = strings.ToLower(s)
	}
	return out
}

// sameTarget reports whether two targets name the same route, tenant and
// segments, in any case.
func sameTarget(a, b Target) bool {
	return a.Route == b.Route && a.Tenant == b.Tenant && strings.EqualFold(a.IDSegment, b.IDSegment) &&
		strings.EqualFold(a.Prefix, b.Prefix) && strings.EqualFold(a.Version, b.Version) &&
		strings.EqualFold(a.soapPath, b.soapPath)
}

func asciiCase(s string, upper bool) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case upper && c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && c >= 'A' && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

// FuzzClassify: a path whose normalisation ends in a reset route is never
// passed through, and Path agrees with normalisePath whatever the ASCII
// case, a trailing slash or a prefix in front.
func FuzzClassify(f *testing.F) {
	for _, tc := range classifyCases {
		f.Add(tc.path)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := Path(p)
		if got.Unclear {
			if len(p) < readingBudget/512 {
				t.Fatalf("Path(%q) is unclear, but the path is short enough to read every way", p)
			}
			return
		}
		// The guard's own reading comes first and decides the target.
		segs := normalise(p, ownReading)
		r, ok := routePattern(segs)
		if ok && got.Route != r {
			t.Fatalf("Path(%q).Route = %q, but its own reading gives %q (a %s route)", p, got.Route, segs, r)
		}
		if got.Route == None && got != (Target{}) {
			t.Fatalf("Path(%q) = %+v: fields set without a route", p, got)
		}
		if ok && (got.Route == REST || got.Route == Agents) {
			n := len(segs)
			if got.Route == REST && got.IDSegment != segs[n-2] {
				t.Fatalf("Path(%q).IDSegment = %q, want %q", p, got.IDSegment, segs[n-2])
			}
			if got.Route == Agents && got.IDSegment != "" {
				t.Fatalf("Path(%q).IDSegment = %q on the Agents route", p, got.IDSegment)
			}
		}
		if got.Tenant != "" && !strings.HasPrefix(got.Tenant, "Cust") {
			t.Fatalf("Path(%q).Tenant = %q", p, got.Tenant)
		}
		// No reading of a path passed through reaches a reset route.
		if got.Route == None {
			for _, rd := range allReadings(p) {
				if segs := normalise(p, rd); match(segs).Route != None {
					t.Fatalf("Path(%q) passes through, but reading %+v gives %q", p, rd, segs)
				}
			}
		}
		// Matching is ASCII case-insensitive.
		for _, upper := range []bool{false, true} {
			if o := Path(asciiCase(p, upper)); !sameTarget(o, got) {
				t.Fatalf("Path(%q) = %+v but Path(%q) = %+v", p, got, asciiCase(p, upper), o)
			}
		}
		// A trailing slash is ignored and any prefix may stand in front.
		if strings.HasPrefix(p, "/") {
			for _, q := range []string{p + "/", "/SuperOffice" + p} {
				if o := Path(q); o.Route != got.Route || o.IDSegment != got.IDSegment {
					t.Fatalf("Path(%q) = %+v but Path(%q) = %+v", p, got, q, o)
				}
			}
		}
	})
}
