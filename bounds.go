package resetguard

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// fieldError is one config value outside its bound. It names the field by
// its JSON path, which every Caddyfile option converts to, so that a
// Caddyfile and its JSON are refused with the same message.
type fieldError struct {
	path  string // JSON field path, e.g. policy.timeout
	value string // the value as configured; empty when it is missing
	want  string // what the field takes
}

func (e *fieldError) Error() string {
	if e.value == "" {
		return e.path + ": " + e.want
	}
	return e.path + " " + e.value + ": " + e.want
}

// optionalDuration checks a duration whose zero means the default: any
// other value must be positive, at least lo and, when hi is not zero, at
// most hi.
func optionalDuration(path string, d caddy.Duration, lo, hi time.Duration) error {
	v := time.Duration(d)
	if v == 0 || (v > 0 && v >= lo && (hi == 0 || v <= hi)) {
		return nil
	}
	var want string
	switch {
	case lo == 0 && hi == 0:
		want = "want a positive duration"
	case hi == 0:
		want = "want a duration of at least " + shortDuration(lo)
	case lo == 0:
		want = "want a duration in (0, " + shortDuration(hi) + "]"
	default:
		want = "want a duration in [" + shortDuration(lo) + ", " + shortDuration(hi) + "]"
	}
	return &fieldError{path: path, value: shortDuration(v), want: want}
}

// durationOff is the value of a duration that turns its feature off
// (the Caddyfile's "off"): zero already means the default.
const durationOff caddy.Duration = -1

// durationOrOff checks an optionalDuration in (0, hi] that may also be
// durationOff.
func durationOrOff(path string, d caddy.Duration, hi time.Duration) error {
	if d == durationOff {
		return nil
	}
	err := optionalDuration(path, d, 0, hi)
	if fe, ok := err.(*fieldError); ok {
		fe.want += ", or off (-1)"
	}
	return err
}

// optionalSize checks a byte count whose zero means the default: any
// other value must be positive and, when hi is not zero, at most hi.
func optionalSize(path string, n, hi int64) error {
	if n == 0 || (n > 0 && (hi == 0 || n <= hi)) {
		return nil
	}
	want := "want a positive size"
	if hi > 0 {
		want = "want a size in [1B, " + sizeText(hi) + "]"
	}
	return &fieldError{path: path, value: sizeText(n), want: want}
}

// optionalCount checks a number whose zero means the default: any other
// value must be at least lo.
func optionalCount(path string, n, lo int) error {
	if n == 0 || n >= lo {
		return nil
	}
	want := "want a number of at least " + strconv.Itoa(lo)
	if lo == 1 {
		want = "want a positive number"
	}
	return &fieldError{path: path, value: strconv.Itoa(n), want: want}
}

// oneOf checks a word whose empty value means the default.
func oneOf(path, v string, allowed ...string) error {
	if v == "" || slices.Contains(allowed, v) {
		return nil
	}
	want := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	return &fieldError{path: path, value: strconv.Quote(v), want: "want " + want}
}

func required(path, v string) error {
	if v != "" {
		return nil
	}
	return &fieldError{path: path, want: "required"}
}

// names checks a list of names: none may be empty, and with atLeastOne
// the list may not be either.
func names(path string, list []string, atLeastOne bool) error {
	if atLeastOne && len(list) == 0 {
		return &fieldError{path: path, want: "want at least one"}
	}
	if slices.Contains(list, "") {
		return &fieldError{path: path, value: `""`, want: "want non-empty names"}
	}
	return nil
}

// httpURL checks a backend URL after replacing the placeholders Provision
// replaces ({env.*}), so that what is checked is what will be dialled. The
// message shows the URL as written: a replaced value may hold a secret.
func httpURL(path, raw string) error {
	u, err := url.Parse(caddy.NewReplacer().ReplaceKnown(raw, ""))
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return nil
	}
	return &fieldError{path: path, value: strconv.Quote(raw), want: "want an http(s) URL"}
}

// shortDuration writes a duration as people write it in a config: "2m",
// not Go's "2m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// sizeText writes a byte count in the largest binary unit that divides
// it, as the Caddyfile accepts it: 1GiB, 64KiB, 1000B.
func sizeText(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n != 0 && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%dB", n)
}
