package classify

import (
	"strings"
	"unicode"
)

// Readings: every way the backend might read a path.
//
// IIS (http.sys) and ASP.NET (System.Web) do not read a path the way the
// guard's own normalisation does, and what sits between Caddy and IIS may
// read it differently again (a proxy that decodes once more, or cuts at a
// decoded '?'). Where the readings disagree about the order of steps, a
// path can reach Reset under one and not under another: "…/Reset/(S(x))/.."
// is Reset to http.sys, which resolves ".." before System.Web drops the
// cookieless segment, and not to a reader that drops it first. So a path
// is read every way its features allow, the guard's own way first, and it
// is guarded when any reading reaches a reset route. The readings were
// found by FuzzGuardMatchesBackend against a model of IIS and System.Web.

// reading is one way of turning an escaped path into segments.
type reading struct {
	// rounds of percent-decoding: 1 is IIS alone, more are decoding
	// proxies in front of it.
	rounds int
	// cutQuery: a decoded '?' or '#' ends the path, as for a proxy that
	// decodes and forwards it raw.
	cutQuery bool
	// keepParams: ';' is part of the segment (IIS); otherwise it starts
	// path parameters, which are dropped.
	keepParams bool
	// keepEmpty: empty segments take part in dot resolution (http.sys:
	// "Reset//.." is "Reset"), and are dropped afterwards.
	keepEmpty bool
	// cookieless is when cookieless-state segments go: before dot
	// resolution, after it (System.Web after http.sys), or as System.Web's
	// RemoveAppPathModifier does: the first occurrence of "/(S(x))", found
	// as a segment, cut from the resolved path as text.
	cookieless cookielessMode
	// lateTrim: trailing dots and spaces are trimmed after dot resolution;
	// during it, "..." and ".. " are names.
	lateTrim bool
	// dotsAsParent: a segment of dots and spaces other than "." and ".."
	// (".. ", "...") counts as "..", when trimmed before resolution.
	dotsAsParent bool
}

type cookielessMode uint8

const (
	cookielessEarly cookielessMode = iota
	cookielessLate
	cookielessText
)

// ownReading is the guard's own reading, tried first: its target is the
// one the guard decides on when several readings reach a reset.
var ownReading = reading{rounds: maxDecodeRounds}

// readingBudget bounds the work of reading one path every way, in bytes
// normalised: a path whose readings would cost more cannot be classified
// (it is guarded and refused when it might name a reset).
const readingBudget = 1 << 20

// features are what a decoded path holds that makes readings differ.
type features struct {
	query, params, empty, paren, trailing, ambiguousDots, dotdot bool
}

// eachReading calls try with the segments of every reading of p, the
// guard's own first, until try returns true. unclear is true when p has
// too many readings to try within readingBudget; then try has seen only
// the guard's own.
func eachReading(p string, try func([]string) bool) (found, unclear bool) {
	if try(normalise(p, ownReading)) {
		return true, false
	}
	decoded := decodings(p)
	var f features
	for _, d := range decoded {
		f.add(d)
	}
	if !mightNameReset(decoded[len(decoded)-1]) {
		return false, false
	}
	rds := f.readings(len(decoded))
	if len(rds)*len(p) > readingBudget {
		return false, true
	}
	for _, rd := range rds {
		if rd != ownReading && try(normalise(p, rd)) {
			return true, false
		}
	}
	return false, false
}

// decodings are p decoded 1, 2, … times, as long as each round changes it
// (at most maxDecodeRounds).
func decodings(p string) []string {
	out := make([]string, 0, maxDecodeRounds)
	for range maxDecodeRounds {
		d := percentDecode(p)
		out = append(out, d)
		if d == p || !strings.Contains(d, "%") {
			break
		}
		p = d
	}
	return out
}

func (f *features) add(d string) {
	f.query = f.query || strings.ContainsAny(d, "?#")
	f.params = f.params || strings.Contains(d, ";")
	d = strings.ReplaceAll(d, `\`, "/")
	// A segment is empty when written so ("//") or once cut at ';' or a
	// NUL ("Reset/%00/..").
	f.empty = f.empty || strings.Contains(d, "//") || strings.ContainsAny(d, ";\x00")
	f.paren = f.paren || strings.Contains(d, "(")
	for raw := range strings.SplitSeq(d, "/") {
		f.dotdot = f.dotdot || strings.Contains(raw, "..")
		// Each segment as a reading may see it: whole, or cut at ';' or
		// a NUL.
		for _, s := range []string{raw, cutAt(raw, ";\x00"), cutAt(raw, "\x00")} {
			t := trimSegment(s)
			f.trailing = f.trailing || t != s
			f.ambiguousDots = f.ambiguousDots || t == "" && s != ".." && strings.Contains(s, "..")
		}
	}
}

// readings lists the readings that can differ for a path with f, decoded
// in up to rounds distinct ways.
func (f features) readings(rounds int) []reading {
	rds := []reading{{}}
	fork := func(relevant bool, set func(*reading)) {
		if !relevant {
			return
		}
		for _, rd := range rds {
			set(&rd)
			rds = append(rds, rd)
		}
	}
	fork(f.query, func(rd *reading) { rd.cutQuery = true })
	fork(f.params, func(rd *reading) { rd.keepParams = true })
	fork(f.empty && f.dotdot, func(rd *reading) { rd.keepEmpty = true })
	fork(f.trailing, func(rd *reading) { rd.lateTrim = true })
	fork(f.ambiguousDots, func(rd *reading) { rd.dotsAsParent = true })
	if f.paren {
		n := len(rds)
		for _, mode := range []cookielessMode{cookielessLate, cookielessText} {
			for _, rd := range rds[:n] {
				rd.cookieless = mode
				rds = append(rds, rd)
			}
		}
	}
	out := make([]reading, 0, len(rds)*rounds)
	for k := 1; k <= rounds; k++ {
		for _, rd := range rds {
			rd.rounds = k
			out = append(out, rd)
		}
	}
	return out
}

// mightNameReset reports whether a fully decoded path holds a word of a
// reset route in any case, folded as .NET folds it, once separators and
// parenthesised runs are taken out (System.Web's text cut of a cookieless
// modifier can join "Re/(S(x))set" into "Reset"): no reading of a path
// without one can reach a reset.
func mightNameReset(d string) bool {
	var plain, cut strings.Builder
	depth := 0
	for _, r := range d {
		if r == '/' || r == '\\' {
			continue
		}
		plain.WriteRune(r)
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			cut.WriteRune(r)
		}
	}
	// An unbalanced '(' hides the rest from cut; plain still has it.
	for _, s := range []string{plain.String(), cut.String()} {
		if f := foldName(s); strings.Contains(f, "reset") || strings.Contains(f, ".svc") {
			return true
		}
	}
	return false
}

// normalise returns the non-empty segments of p (case kept) as rd reads
// it. '\' is always '/', "." and ".." are always resolved, and whatever
// follows a NUL in a segment is dropped (as native code below ASP.NET may
// read a C string).
func normalise(p string, rd reading) []string {
	for range rd.rounds {
		if !strings.Contains(p, "%") {
			break
		}
		p = percentDecode(p)
	}
	if rd.cutQuery {
		if i := strings.IndexAny(p, "?#"); i >= 0 {
			p = p[:i]
		}
	}
	p = strings.ReplaceAll(p, `\`, "/")
	raw := strings.Split(p, "/")
	segs := make([]string, 0, len(raw))
	var modifiers []string
	for _, s := range raw {
		if rd.keepParams {
			s = cutAt(s, "\x00")
		} else {
			s = cutAt(s, ";\x00")
		}
		parent := s == ".."
		if !rd.lateTrim && s != "." && s != ".." {
			t := trimSegment(s)
			if t == "" && s != "" {
				// Dots and spaces only: a name trimmed to nothing, or
				// "..".
				if !rd.dotsAsParent || !strings.Contains(s, "..") {
					continue
				}
				parent = true
			}
			s = t
		}
		if isCookieless(s) {
			if rd.cookieless == cookielessEarly {
				continue
			}
			modifiers = append(modifiers, s)
		}
		switch {
		case parent:
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		case s == "." || s == "" && !rd.keepEmpty:
		default:
			segs = append(segs, s)
		}
	}
	return finish(segs, modifiers, rd)
}

// finish applies what rd does after dot resolution: late trimming, late
// cookieless removal, and drops the empty segments.
func finish(segs, modifiers []string, rd reading) []string {
	out := segs[:0]
	for _, s := range segs {
		if rd.lateTrim {
			s = trimSegment(s)
		}
		if s == "" || rd.cookieless == cookielessLate && isCookieless(s) {
			continue
		}
		out = append(out, s)
	}
	if rd.cookieless != cookielessText || len(modifiers) == 0 {
		return out
	}
	joined := "/" + strings.Join(out, "/")
	for _, m := range modifiers {
		joined = strings.Replace(joined, "/"+m, "", 1)
	}
	out = out[:0]
	for s := range strings.SplitSeq(joined, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// cutAt is s up to the first of chars.
func cutAt(s, chars string) string {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return s[:i]
	}
	return s
}

// trimSegment drops trailing dots and white space, which IIS ignores.
func trimSegment(s string) string {
	return strings.TrimRightFunc(s, func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
}
