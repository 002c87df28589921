package credential

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

func newRequest(headers []hdr) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset", nil)
	for _, h := range headers {
		r.Header.Add(h.name, h.value)
	}
	return r
}

// secretsOf lists what must never appear in an error for c: every header
// value, the part of it after the first space, every cookie value, and the
// case's own list.
func secretsOf(c parseCase) []string {
	var out []string
	add := func(s string) {
		s = strings.TrimSpace(s)
		// Very short values (a, b) would match inside the reason words.
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	for _, h := range c.headers {
		add(h.value)
		if _, v, ok := strings.Cut(strings.TrimSpace(h.value), " "); ok {
			add(v)
		}
		if http.CanonicalHeaderKey(h.name) == "Cookie" {
			for _, ck := range strings.Split(h.value, ";") {
				if _, v, ok := strings.Cut(ck, "="); ok {
					add(v)
				}
			}
		}
	}
	for _, s := range c.secrets {
		add(s)
	}
	return out
}

func schemesOf(c parseCase) []Scheme {
	if c.schemes == nil {
		return AllSchemes
	}
	return c.schemes
}

// checkRefusal asserts that err is the 401 refusal of one credential
// reason, with the bearer challenge flag as wanted.
func checkRefusal(t *testing.T, err error, reason string, invalid bool) *refusal.Refusal {
	t.Helper()
	f, ok := refusal.As(err)
	if !ok {
		t.Fatalf("error %T %v is not a *refusal.Refusal", err, err)
	}
	if !slices.Equal(f.Reasons, []string{reason}) {
		t.Errorf("Reasons = %q, want [%q]", f.Reasons, reason)
	}
	if f.Status != http.StatusUnauthorized || f.Message != refusal.MessageUnauthenticated {
		t.Errorf("Status, Message = %d, %q; want 401, %q", f.Status, f.Message, refusal.MessageUnauthenticated)
	}
	if f.InvalidToken != invalid {
		t.Errorf("InvalidToken = %v, want %v", f.InvalidToken, invalid)
	}
	return f
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRequest(tc.headers)
			got, err := Parse(r, Options{Schemes: schemesOf(tc)}, tc.pathTenant)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Parse: %v, want %+v", err, tc.want)
				}
				if got != tc.want {
					t.Fatalf("Parse = %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse = %+v, nil; want failure %q", got, tc.reason)
			}
			if got != (Credential{}) {
				t.Errorf("Parse returned %+v beside the error, want the zero Credential", got)
			}
			checkRefusal(t, err, tc.reason, tc.invalid)
			msg := err.Error()
			if !strings.Contains(msg, tc.reason) {
				t.Errorf("Error() = %q does not name the reason %q", msg, tc.reason)
			}
			for _, s := range secretsOf(tc) {
				if strings.Contains(msg, s) {
					t.Errorf("Error() = %q contains the secret %q", msg, s)
				}
			}
		})
	}
}

// TestParseDoesNotModifyRequest checks that the credential headers reach
// the backend unchanged.
func TestParseDoesNotModifyRequest(t *testing.T) {
	for _, tc := range parseCases {
		r := newRequest(tc.headers)
		before := r.Header.Clone()
		_, _ = Parse(r, Options{Schemes: schemesOf(tc)}, tc.pathTenant)
		if len(r.Header) != len(before) {
			t.Errorf("%s: headers changed from %v to %v", tc.name, before, r.Header)
			continue
		}
		for k, v := range before {
			if !slices.Equal(r.Header[k], v) {
				t.Errorf("%s: header %s changed from %q to %q", tc.name, k, v, r.Header[k])
			}
		}
	}
}

// TestParseRefusal: the refusal is found through wrapping, as the handler
// finds it, and carries the decoder's cause without the credential.
func TestParseRefusal(t *testing.T) {
	_, mismatch := Parse(newRequest(authz("Bearer "+soToken)), Options{Schemes: AllSchemes}, otherTenant)
	_, badBasic := Parse(newRequest(authz("Basic dXNlcjpwYXNzd29yZA")), Options{Schemes: AllSchemes}, "")
	for _, tc := range []struct {
		name      string
		err       error
		reason    string // "": refusal.As finds nothing
		wantCause bool
		text      string
	}{
		{name: "nil", err: nil},
		{name: "plain error", err: errors.New("credential: missing_credentials")},
		{name: "refusal", err: mismatch, reason: "tenant_mismatch",
			text: "reset_guard: tenant_mismatch: " + refusal.MessageUnauthenticated},
		{name: "wrapped refusal", err: fmt.Errorf("step 3: %w", mismatch), reason: "tenant_mismatch",
			text: "reset_guard: tenant_mismatch: " + refusal.MessageUnauthenticated},
		{name: "refusal with a cause", err: badBasic, reason: "malformed_basic", wantCause: true,
			text: "reset_guard: malformed_basic: " + refusal.MessageUnauthenticated +
				": credential: decoding Basic credentials: illegal base64 data at input byte 16"},
	} {
		f, ok := refusal.As(tc.err)
		if ok != (tc.reason != "") {
			t.Fatalf("%s: refusal.As = %v, %v", tc.name, f, ok)
		}
		if !ok {
			continue
		}
		if f.Reason() != tc.reason {
			t.Errorf("%s: reason %q, want %q", tc.name, f.Reason(), tc.reason)
		}
		var corrupt base64.CorruptInputError
		if got := errors.As(tc.err, &corrupt); got != tc.wantCause {
			t.Errorf("%s: cause is a base64.CorruptInputError: %v, want %v", tc.name, got, tc.wantCause)
		}
		if got := f.Error(); got != tc.text {
			t.Errorf("%s: Error() = %q, want %q", tc.name, got, tc.text)
		}
	}
}

func TestFromSOAPTicket(t *testing.T) {
	for _, tc := range []struct {
		name    string
		schemes []Scheme // nil: AllSchemes
		headers []hdr
		ticket  string
		reason  string // "": accepted
	}{
		{name: "ticket", ticket: ticket},
		{name: "ticket only scheme accepted", schemes: []Scheme{SchemeSoTicket}, ticket: ticket},
		{name: "authorization beside", headers: authz("SoTicket " + ticket), ticket: ticket, reason: "duplicate_authorization"},
		{name: "xsrf header beside", headers: xsrfPair(xsrfToken, xsrfToken), ticket: ticket, reason: "duplicate_authorization"},
		{name: "soticket not accepted", schemes: []Scheme{SchemeBasic, SchemeBearer}, ticket: ticket, reason: "scheme_not_accepted"},
		{name: "empty ticket", ticket: "", reason: "malformed_authorization"},
		{name: "ticket with a space", ticket: "7T:abc def", reason: "malformed_authorization"},
		{name: "ticket with CRLF", ticket: "7T:abc\r\nX: 1", reason: "malformed_authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromSOAPTicket(newRequest(tc.headers), Options{Schemes: schemesOf(parseCase{schemes: tc.schemes})}, tc.ticket)
			if tc.reason == "" {
				if want := (Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: tc.ticket}); err != nil || got != want {
					t.Fatalf("FromSOAPTicket = %+v, %v; want %+v", got, err, want)
				}
				return
			}
			if got != (Credential{}) {
				t.Errorf("FromSOAPTicket returned %+v beside the error", got)
			}
			checkRefusal(t, err, tc.reason, false)
			if strings.Contains(err.Error(), ticket) {
				t.Errorf("Error() = %q contains the ticket", err)
			}
		})
	}
}

func TestParseScheme(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Scheme // "": an error
	}{
		{"basic", SchemeBasic},
		{"Basic", SchemeBasic},
		{"BASIC", SchemeBasic},
		{"soticket", SchemeSoTicket},
		{"SoTicket", SchemeSoTicket},
		{"SOTICKET", SchemeSoTicket},
		{"bearer", SchemeBearer},
		{"Bearer", SchemeBearer},
		{"xsrf", SchemeXSRF},
		{"XSRF", SchemeXSRF},
		{"", ""},
		{"digest", ""},
		{"ticket", ""},
		{"so-ticket", ""},
		{"basic ", ""},
		{" bearer", ""},
		{"jwt", ""},
		{"cookie", ""},
	} {
		got, err := ParseScheme(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseScheme(%q) = %q, nil; want an error", tc.in, got)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("ParseScheme(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestChallenges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		schemes []Scheme
		realm   string
		invalid bool // a bearer token was refused
		want    []string
	}{
		{"all, no failure", AllSchemes, "SuperOffice", false, []string{
			`Basic realm="SuperOffice", charset="UTF-8"`,
			`SoTicket realm="SuperOffice"`,
			`Bearer realm="SuperOffice"`,
		}},
		{"all, missing credentials", AllSchemes, "SuperOffice", false, []string{
			`Basic realm="SuperOffice", charset="UTF-8"`,
			`SoTicket realm="SuperOffice"`,
			`Bearer realm="SuperOffice"`,
		}},
		{"all, invalid token", AllSchemes, "SuperOffice", true, []string{
			`Basic realm="SuperOffice", charset="UTF-8"`,
			`SoTicket realm="SuperOffice"`,
			`Bearer realm="SuperOffice", error="invalid_token"`,
		}},
		{"basic only", []Scheme{SchemeBasic}, "r", true, []string{`Basic realm="r", charset="UTF-8"`}},
		{"soticket only", []Scheme{SchemeSoTicket}, "r", false, []string{`SoTicket realm="r"`}},
		{"bearer only", []Scheme{SchemeBearer}, "r", false, []string{`Bearer realm="r"`}},
		{"bearer only, invalid token", []Scheme{SchemeBearer}, "r", true, []string{`Bearer realm="r", error="invalid_token"`}},
		{"bearer and xsrf", []Scheme{SchemeXSRF, SchemeBearer}, "r", false, []string{`Bearer realm="r"`}},
		{"xsrf only", []Scheme{SchemeXSRF}, "r", true, nil},
		{"none", nil, "r", false, nil},
		{"realm with quote and backslash", []Scheme{SchemeBasic, SchemeBearer}, `a"b\c`, false, []string{
			`Basic realm="a\"b\\c", charset="UTF-8"`,
			`Bearer realm="a\"b\\c"`,
		}},
		{"empty realm", []Scheme{SchemeSoTicket}, "", false, []string{`SoTicket realm=""`}},
	} {
		got := Challenges(Options{Schemes: tc.schemes}, tc.realm, tc.invalid)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: Challenges = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestChallengesFromParse ties Parse's failures to the challenge: only a
// refused bearer token earns error="invalid_token".
func TestChallengesFromParse(t *testing.T) {
	for _, tc := range parseCases {
		if tc.reason == "" {
			continue
		}
		opts := Options{Schemes: schemesOf(tc)}
		_, err := Parse(newRequest(tc.headers), opts, tc.pathTenant)
		f, _ := refusal.As(err)
		got := strings.Join(Challenges(opts, "SuperOffice", f != nil && f.InvalidToken), "\n")
		hasErr := strings.Contains(got, `error="invalid_token"`)
		if want := tc.invalid && slices.Contains(opts.Schemes, SchemeBearer); hasErr != want {
			t.Errorf("%s: challenges %q; invalid_token present = %v, want %v", tc.name, got, hasErr, want)
		}
	}
}

// TestXSRFDuplicateCookieWithInvalidValue: net/http drops cookie values it
// deems invalid, which must not hide a second XSRF-TOKEN from the guard.
func TestXSRFDuplicateCookieWithInvalidValue(t *testing.T) {
	r := newRequest([]hdr{{"X-Xsrf-Token", "tok1"}, {"Cookie", `XSRF-TOKEN=tok1; XSRF-TOKEN=x\y`}})
	_, err := Parse(r, Options{Schemes: AllSchemes}, "")
	f, ok := refusal.As(err)
	if !ok || f.Reason() != "duplicate_xsrf_cookie" {
		t.Fatalf("err = %v, want duplicate_xsrf_cookie", err)
	}
}

// TestCredentialFormatHidesSecret covers every fmt verb.
func TestCredentialFormatHidesSecret(t *testing.T) {
	c, err := Parse(newRequest([]hdr{{"Authorization", "SoTicket 7T:dG9wLXNlY3JldA=="}}), Options{Schemes: AllSchemes}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		if s := fmt.Sprintf(verb, c); strings.Contains(s, "dG9wLXNlY3JldA") {
			t.Errorf("%s prints the secret: %s", verb, s)
		}
	}
}

func BenchmarkParseBasic(b *testing.B) {
	r := newRequest(authz("Basic " + basicValue))
	opts := Options{Schemes: AllSchemes}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(r, opts, ""); err != nil {
			b.Fatal(err)
		}
	}
}
