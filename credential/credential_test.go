package credential

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// hdr is one request header line, added in order.
type hdr struct{ name, value string }

func newRequest(headers []hdr) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset", nil)
	for _, h := range headers {
		r.Header.Add(h.name, h.value)
	}
	return r
}

const (
	basicUser   = "alice"
	basicPass   = "s3cret-Passw0rd"
	ticket      = "7T:ZGVtby10aWNrZXQtdmFsdWU="
	soToken     = "8A:Cust12345.AbCdEfGhIjKlMnOp"
	jwt         = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI1IiwiY3R4IjoiQ3VzdDEyMzQ1In0.c2lnbmF0dXJlLXZhbHVl"
	xsrfToken   = "xsrf-Tok3n-8c1f2a"
	otherXSRF   = "xsrf-Other-77d1e0"
	appToken    = "app-token-secret-1"
	pathTenant  = "Cust12345"
	otherTenant = "Cust99999"
)

var basicValue = b64(basicUser + ":" + basicPass)

type parseCase struct {
	name       string
	schemes    []Scheme // nil: AllSchemes
	headers    []hdr
	pathTenant string
	want       Credential // checked when reason is ""
	reason     string
	invalid    bool // Failure.InvalidToken
	// secrets lists further strings that must not appear in an error;
	// every header value and the part after the scheme word are checked
	// anyway.
	secrets []string
}

func authz(v string) []hdr { return []hdr{{"Authorization", v}} }

func xsrfPair(header, cookie string) []hdr {
	return []hdr{{"X-XSRF-TOKEN", header}, {"Cookie", "XSRF-TOKEN=" + cookie}}
}

var parseCases = []parseCase{
	// Basic.
	{name: "basic", headers: authz("Basic " + basicValue),
		want: Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass}},
	{name: "basic lower-case scheme", headers: authz("basic " + basicValue),
		want: Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass}},
	{name: "basic upper-case scheme", headers: authz("BASIC " + basicValue),
		want: Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass}},
	{name: "basic extra spaces", headers: authz("  Basic    " + basicValue + "  "),
		want: Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass}},
	{name: "basic colon in password", headers: authz("Basic " + b64("alice:pa:ss:word")),
		want: Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: "alice", secret: "alice:pa:ss:word"}},
	{name: "basic empty password", headers: authz("Basic " + b64("alice:")),
		want: Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: "alice", secret: "alice:"}},
	{name: "basic only scheme accepted", schemes: []Scheme{SchemeBasic}, headers: authz("Basic " + basicValue),
		want: Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass}},
	{name: "basic ignores path tenant", headers: authz("Basic " + basicValue), pathTenant: otherTenant,
		want: Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass}},
	{name: "basic wins over xsrf pair", headers: append(authz("Basic "+basicValue), xsrfPair(xsrfToken, xsrfToken)...),
		want: Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass}},
	{name: "basic bad base64 length", headers: authz("Basic dXNlcjpwYXNzd29yZA"), reason: "malformed_basic"},
	{name: "basic bad base64 padding", headers: authz("Basic dXNl=cjpwYXNz"), reason: "malformed_basic"},
	{name: "basic base64url alphabet", headers: authz("Basic " + strings.NewReplacer("+", "-", "/", "_").Replace(b64("alice:>>>???"))), reason: "malformed_basic"},
	{name: "basic not token68", headers: authz("Basic !!secret!!"), reason: "malformed_authorization", secrets: []string{"!!secret!!"}},
	{name: "basic without colon", headers: authz("Basic " + b64("alicesecretpass")), reason: "malformed_basic", secrets: []string{"alicesecretpass"}},
	{name: "basic empty user", headers: authz("Basic " + b64(":secretpass")), reason: "malformed_basic", secrets: []string{"secretpass"}},
	{name: "basic empty user and password", headers: authz("Basic " + b64(":")), reason: "malformed_basic"},
	{name: "basic no value", headers: authz("Basic"), reason: "malformed_authorization"},
	{name: "basic blank value", headers: authz("Basic    "), reason: "malformed_authorization"},
	{name: "basic not accepted", schemes: []Scheme{SchemeSoTicket, SchemeBearer, SchemeXSRF}, headers: authz("Basic " + basicValue),
		reason: "scheme_not_accepted", secrets: []string{basicUser + ":" + basicPass}},

	// SoTicket.
	{name: "soticket SoTicket", headers: authz("SoTicket 7T:abc=="),
		want: Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: "7T:abc=="}},
	{name: "soticket SOTicket", headers: authz("SOTicket 7T:abc=="),
		want: Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: "7T:abc=="}},
	{name: "soticket SOTICKET", headers: authz("SOTICKET 7T:abc=="),
		want: Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: "7T:abc=="}},
	{name: "soticket soticket", headers: authz("soticket 7T:abc=="),
		want: Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: "7T:abc=="}},
	{name: "soticket realistic", headers: authz("SOTicket " + ticket), pathTenant: pathTenant,
		want: Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: ticket}},
	{name: "soticket not accepted", schemes: []Scheme{SchemeBasic}, headers: authz("SoTicket " + ticket), reason: "scheme_not_accepted"},
	{name: "soticket no value", headers: authz("SoTicket"), reason: "malformed_authorization"},
	{name: "so-ticket is not soticket", headers: authz("SO-Ticket " + ticket), reason: "scheme_not_accepted"},

	// Bearer: SuperOffice Online tokens.
	{name: "bearer token matching tenant", headers: authz("Bearer " + soToken), pathTenant: pathTenant,
		want: Credential{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: "Cust12345", secret: soToken}},
	{name: "bearer token tenant case-insensitive", headers: authz("Bearer " + soToken), pathTenant: "cust12345",
		want: Credential{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: "Cust12345", secret: soToken}},
	{name: "bearer lower-case token tenant", headers: authz("Bearer 8A:cust12345.AbCd"), pathTenant: pathTenant,
		want: Credential{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: "Cust12345", secret: "8A:cust12345.AbCd"}},
	{name: "bearer token no path tenant", headers: authz("Bearer " + soToken), pathTenant: "",
		want: Credential{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: "Cust12345", secret: soToken}},
	{name: "bearer lower-case scheme", headers: authz("bearer " + soToken), pathTenant: pathTenant,
		want: Credential{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: "Cust12345", secret: soToken}},
	{name: "bearer token with dots after tenant", headers: authz("Bearer 8A:Cust12345.a.b.c"), pathTenant: pathTenant,
		want: Credential{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: "Cust12345", secret: "8A:Cust12345.a.b.c"}},
	{name: "bearer token other tenant", headers: authz("Bearer " + soToken), pathTenant: otherTenant,
		reason: "tenant_mismatch", invalid: true},
	{name: "bearer token tenant prefix of path tenant", headers: authz("Bearer 8A:Cust1234.AbCdEf"), pathTenant: pathTenant,
		reason: "tenant_mismatch", invalid: true},
	{name: "bearer token empty tenant", headers: authz("Bearer 8A:.x"), reason: "malformed_bearer", invalid: true},
	{name: "bearer token no dot", headers: authz("Bearer 8A:Cust1"), reason: "malformed_bearer", invalid: true},
	{name: "bearer token nothing after dot", headers: authz("Bearer 8A:Cust12345."), pathTenant: pathTenant, reason: "malformed_bearer", invalid: true},
	{name: "bearer token prefix only", headers: authz("Bearer 8A:"), reason: "malformed_bearer", invalid: true},
	{name: "bearer token lower-case prefix", headers: authz("Bearer 8a:Cust12345.AbCd"), reason: "malformed_bearer", invalid: true},
	// Bearer: JWTs and others.
	{name: "bearer jwt", headers: authz("Bearer " + jwt), pathTenant: pathTenant, reason: "jwt_not_verifiable", invalid: true,
		secrets: strings.Split(jwt, ".")},
	{name: "bearer jwt two parts", headers: authz("Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI1In0"), reason: "malformed_bearer", invalid: true},
	{name: "bearer jwt empty signature", headers: authz("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiI1In0."), reason: "malformed_bearer", invalid: true},
	{name: "bearer jwt four parts", headers: authz("Bearer aaaa.bbbb.cccc.dddd"), reason: "malformed_bearer", invalid: true},
	{name: "bearer jwt padded", headers: authz("Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI1In0=.c2ln"), reason: "malformed_bearer", invalid: true},
	{name: "bearer opaque", headers: authz("Bearer opaque-token-value"), reason: "malformed_bearer", invalid: true},
	{name: "bearer empty", headers: authz("Bearer"), reason: "malformed_authorization"},
	{name: "bearer blank", headers: authz("Bearer   "), reason: "malformed_authorization"},
	{name: "bearer not accepted", schemes: []Scheme{SchemeBasic, SchemeSoTicket}, headers: authz("Bearer " + soToken), pathTenant: pathTenant,
		reason: "scheme_not_accepted"},

	// Authorization header shape.
	{name: "two authorization headers", headers: append(authz("Basic "+basicValue), authz("Bearer "+soToken)...), pathTenant: pathTenant,
		reason: "duplicate_authorization"},
	{name: "two identical authorization headers", headers: append(authz("Basic "+basicValue), authz("Basic "+basicValue)...),
		reason: "duplicate_authorization"},
	{name: "folded credentials", headers: authz("Basic " + basicValue + ", Bearer " + soToken), pathTenant: pathTenant,
		reason: "malformed_authorization"},
	{name: "folded credentials short", headers: authz("Basic a, Bearer b"), reason: "malformed_authorization"},
	{name: "auth-param after token", headers: authz("Bearer " + soToken + " realm=x"), reason: "malformed_authorization"},
	{name: "empty authorization", headers: authz(""), reason: "malformed_authorization"},
	{name: "empty authorization beside xsrf", headers: append(authz(""), xsrfPair(xsrfToken, xsrfToken)...), reason: "malformed_authorization"},
	{name: "scheme only, unknown", headers: authz("Digest"), reason: "malformed_authorization"},
	{name: "unknown scheme digest", headers: authz("Digest abc123def456"), reason: "scheme_not_accepted"},
	{name: "unknown scheme negotiate", headers: authz("Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXagMDAu"), reason: "scheme_not_accepted"},
	{name: "unknown scheme xsrf", headers: authz("XSRF " + xsrfToken), reason: "scheme_not_accepted"},
	{name: "tab after scheme", headers: authz("Basic\t" + basicValue), reason: "malformed_authorization"},
	{name: "NUL in basic", headers: authz("Basic dXNl\x00cjpwYXNz"), reason: "malformed_authorization"},
	{name: "DEL in ticket", headers: authz("SoTicket 7T:abc\x7fdef"), reason: "malformed_authorization"},
	{name: "tab in bearer", headers: authz("Bearer 8A:Cust12345.Ab\tCdEf"), pathTenant: pathTenant, reason: "malformed_authorization"},
	{name: "CRLF in ticket", headers: authz("SoTicket 7T:abc\r\nX-Injected: 1"), reason: "malformed_authorization"},
	{name: "non-ASCII in ticket", headers: authz("SoTicket 7T:åbcdef"), reason: "malformed_authorization"},
	{name: "quote in ticket", headers: authz(`SoTicket "7T:abcdef"`), reason: "malformed_authorization"},

	// XSRF cookie pair.
	{name: "xsrf", headers: xsrfPair(xsrfToken, xsrfToken),
		want: Credential{Scheme: SchemeXSRF, Kind: KindXSRF, secret: xsrfToken}},
	{name: "xsrf only scheme accepted", schemes: []Scheme{SchemeXSRF}, headers: xsrfPair(xsrfToken, xsrfToken),
		want: Credential{Scheme: SchemeXSRF, Kind: KindXSRF, secret: xsrfToken}},
	{name: "xsrf among other cookies", headers: []hdr{{"x-xsrf-token", xsrfToken}, {"Cookie", "a=1; XSRF-TOKEN=" + xsrfToken + "; b=2"}},
		want: Credential{Scheme: SchemeXSRF, Kind: KindXSRF, secret: xsrfToken}},
	{name: "xsrf cookie in second cookie header", headers: []hdr{{"X-XSRF-TOKEN", xsrfToken}, {"Cookie", "a=1"}, {"Cookie", "XSRF-TOKEN=" + xsrfToken}},
		want: Credential{Scheme: SchemeXSRF, Kind: KindXSRF, secret: xsrfToken}},
	{name: "xsrf mismatch", headers: xsrfPair(xsrfToken, otherXSRF), reason: "xsrf_mismatch"},
	{name: "xsrf header is a prefix of the cookie", headers: xsrfPair(xsrfToken[:8], xsrfToken), reason: "xsrf_mismatch"},
	{name: "xsrf differs in case", headers: xsrfPair(strings.ToUpper(xsrfToken), xsrfToken), reason: "xsrf_mismatch"},
	{name: "xsrf empty header", headers: xsrfPair("", xsrfToken), reason: "xsrf_empty"},
	{name: "xsrf empty cookie", headers: xsrfPair(xsrfToken, ""), reason: "xsrf_empty"},
	{name: "xsrf both empty", headers: xsrfPair("", ""), reason: "xsrf_empty"},
	{name: "xsrf missing cookie", headers: []hdr{{"X-XSRF-TOKEN", xsrfToken}}, reason: "xsrf_cookie_missing"},
	{name: "xsrf cookie under another name", headers: []hdr{{"X-XSRF-TOKEN", xsrfToken}, {"Cookie", "XSRF_TOKEN=" + xsrfToken}}, reason: "xsrf_cookie_missing"},
	{name: "xsrf two cookies", headers: []hdr{{"X-XSRF-TOKEN", xsrfToken}, {"Cookie", "XSRF-TOKEN=" + xsrfToken + "; XSRF-TOKEN=" + otherXSRF}},
		reason: "duplicate_xsrf_cookie", secrets: []string{otherXSRF}},
	{name: "xsrf two identical cookies", headers: []hdr{{"X-XSRF-TOKEN", xsrfToken}, {"Cookie", "XSRF-TOKEN=" + xsrfToken}, {"Cookie", "XSRF-TOKEN=" + xsrfToken}},
		reason: "duplicate_xsrf_cookie"},
	{name: "xsrf two headers", headers: []hdr{{"X-XSRF-TOKEN", xsrfToken}, {"X-XSRF-TOKEN", xsrfToken}, {"Cookie", "XSRF-TOKEN=" + xsrfToken}},
		reason: "duplicate_xsrf_header"},
	{name: "xsrf not accepted", schemes: []Scheme{SchemeBasic, SchemeSoTicket, SchemeBearer}, headers: xsrfPair(xsrfToken, xsrfToken),
		reason: "scheme_not_accepted"},

	// Nothing usable.
	{name: "no credentials", headers: nil, reason: "missing_credentials"},
	{name: "cookie without header", headers: []hdr{{"Cookie", "XSRF-TOKEN=" + xsrfToken}}, reason: "missing_credentials"},
	{name: "app token alone", headers: []hdr{{"SO-AppToken", appToken}}, reason: "missing_credentials"},
	{name: "no schemes accepted", schemes: []Scheme{}, headers: authz("Basic " + basicValue), reason: "scheme_not_accepted"},
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
			f, ok := AsFailure(err)
			if !ok {
				t.Fatalf("error %T %v is not a *Failure", err, err)
			}
			if f.Reason != tc.reason {
				t.Errorf("Reason = %q, want %q", f.Reason, tc.reason)
			}
			if f.InvalidToken != tc.invalid {
				t.Errorf("InvalidToken = %v, want %v", f.InvalidToken, tc.invalid)
			}
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

func TestAsFailure(t *testing.T) {
	orig := &Failure{Reason: "tenant_mismatch", InvalidToken: true}
	for _, tc := range []struct {
		name string
		err  error
		want *Failure
	}{
		{"nil", nil, nil},
		{"plain error", errors.New("credential: missing_credentials"), nil},
		{"failure", orig, orig},
		{"wrapped failure", fmt.Errorf("step 3: %w", orig), orig},
	} {
		f, ok := AsFailure(tc.err)
		if ok != (tc.want != nil) || f != tc.want {
			t.Errorf("%s: AsFailure = %v, %v; want %v", tc.name, f, ok, tc.want)
		}
	}
	if got := orig.Error(); got != "credential: tenant_mismatch" {
		t.Errorf("Error() = %q", got)
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
	invalid := &Failure{Reason: "tenant_mismatch", InvalidToken: true}
	missing := &Failure{Reason: "missing_credentials"}
	for _, tc := range []struct {
		name    string
		schemes []Scheme
		realm   string
		f       *Failure
		want    []string
	}{
		{"all, no failure", AllSchemes, "SuperOffice", nil, []string{
			`Basic realm="SuperOffice", charset="UTF-8"`,
			`SoTicket realm="SuperOffice"`,
			`Bearer realm="SuperOffice"`,
		}},
		{"all, missing credentials", AllSchemes, "SuperOffice", missing, []string{
			`Basic realm="SuperOffice", charset="UTF-8"`,
			`SoTicket realm="SuperOffice"`,
			`Bearer realm="SuperOffice"`,
		}},
		{"all, invalid token", AllSchemes, "SuperOffice", invalid, []string{
			`Basic realm="SuperOffice", charset="UTF-8"`,
			`SoTicket realm="SuperOffice"`,
			`Bearer realm="SuperOffice", error="invalid_token"`,
		}},
		{"basic only", []Scheme{SchemeBasic}, "r", invalid, []string{`Basic realm="r", charset="UTF-8"`}},
		{"soticket only", []Scheme{SchemeSoTicket}, "r", nil, []string{`SoTicket realm="r"`}},
		{"bearer only", []Scheme{SchemeBearer}, "r", nil, []string{`Bearer realm="r"`}},
		{"bearer only, invalid token", []Scheme{SchemeBearer}, "r", invalid, []string{`Bearer realm="r", error="invalid_token"`}},
		{"bearer and xsrf", []Scheme{SchemeXSRF, SchemeBearer}, "r", nil, []string{`Bearer realm="r"`}},
		{"xsrf only", []Scheme{SchemeXSRF}, "r", invalid, nil},
		{"none", nil, "r", nil, nil},
		{"realm with quote and backslash", []Scheme{SchemeBasic, SchemeBearer}, `a"b\c`, nil, []string{
			`Basic realm="a\"b\\c", charset="UTF-8"`,
			`Bearer realm="a\"b\\c"`,
		}},
		{"empty realm", []Scheme{SchemeSoTicket}, "", nil, []string{`SoTicket realm=""`}},
	} {
		got := Challenges(Options{Schemes: tc.schemes}, tc.realm, tc.f)
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
		f, _ := AsFailure(err)
		got := strings.Join(Challenges(opts, "SuperOffice", f), "\n")
		hasErr := strings.Contains(got, `error="invalid_token"`)
		if want := tc.invalid && slices.Contains(opts.Schemes, SchemeBearer); hasErr != want {
			t.Errorf("%s: challenges %q; invalid_token present = %v, want %v", tc.name, got, hasErr, want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	keyA := []byte("fingerprint-key-A")
	keyB := []byte("fingerprint-key-B")
	fa, fb := NewFingerprinter(keyA), NewFingerprinter(keyB)

	basicCred := Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass}
	ticketCred := Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: ticket}

	// Format.
	for _, c := range []Credential{basicCred, ticketCred, {}} {
		fp := fa.Fingerprint(c)
		if len(fp) != 32 {
			t.Errorf("Fingerprint(%s) = %q: %d characters, want 32", c.Scheme, fp, len(fp))
		}
		if _, err := hex.DecodeString(fp); err != nil || fp != strings.ToLower(fp) {
			t.Errorf("Fingerprint(%s) = %q is not lower-case hex", c.Scheme, fp)
		}
		if c.secret != "" && strings.Contains(fp, c.secret) {
			t.Errorf("Fingerprint(%s) = %q contains the secret", c.Scheme, fp)
		}
	}

	// Deterministic for the same key and credential, also across instances.
	if x, y := fa.Fingerprint(basicCred), fa.Fingerprint(basicCred); x != y {
		t.Errorf("same fingerprinter: %q != %q", x, y)
	}
	if x, y := fa.Fingerprint(basicCred), NewFingerprinter(keyA).Fingerprint(basicCred); x != y {
		t.Errorf("same key, another fingerprinter: %q != %q", x, y)
	}
	// Only scheme and secret count, not the parsed fields.
	same := basicCred
	same.Username, same.Kind, same.Tenant = "someone-else", KindTicket, "Cust1"
	if x, y := fa.Fingerprint(basicCred), fa.Fingerprint(same); x != y {
		t.Errorf("fingerprint depends on more than scheme and secret: %q != %q", x, y)
	}

	// Differs across keys, schemes and secrets.
	if x, y := fa.Fingerprint(basicCred), fb.Fingerprint(basicCred); x == y {
		t.Errorf("keys A and B give the same fingerprint %q", x)
	}
	const shared = "7T:c2hhcmVkLXNlY3JldA=="
	bySchemes := map[string]Scheme{}
	for _, s := range AllSchemes {
		fp := fa.Fingerprint(Credential{Scheme: s, secret: shared})
		if prev, ok := bySchemes[fp]; ok {
			t.Errorf("schemes %s and %s give the same fingerprint %q for one secret", prev, s, fp)
		}
		bySchemes[fp] = s
	}
	bySecret := map[string]string{}
	for _, sec := range []string{"", "a", "b", ticket, ticket + "x", basicValue, xsrfToken, otherXSRF, soToken} {
		fp := fa.Fingerprint(Credential{Scheme: SchemeBearer, secret: sec})
		if prev, ok := bySecret[fp]; ok {
			t.Errorf("secrets %q and %q give the same fingerprint %q", prev, sec, fp)
		}
		bySecret[fp] = sec
	}
	// The separator keeps scheme and secret apart: "basic"+"x..." is not
	// "basicx"+"...".
	if x, y := fa.Fingerprint(Credential{Scheme: "basic", secret: "xsrf"}), fa.Fingerprint(Credential{Scheme: "basicxsrf"}); x == y {
		t.Errorf("scheme/secret boundary is ambiguous: %q", x)
	}

	// The key is copied: changing the caller's slice later changes nothing.
	key := []byte("mutable-key")
	fm := NewFingerprinter(key)
	before := fm.Fingerprint(ticketCred)
	key[0] = 'X'
	if after := fm.Fingerprint(ticketCred); after != before {
		t.Errorf("fingerprint changed after the caller's key slice changed: %q -> %q", before, after)
	}
}

func TestFingerprintEmptyKey(t *testing.T) {
	c := Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: ticket}
	f1, f2, f3 := NewFingerprinter(nil), NewFingerprinter([]byte{}), NewFingerprinter(nil)
	x := f1.Fingerprint(c)
	if y, z := f2.Fingerprint(c), f3.Fingerprint(c); x != y || x != z {
		t.Errorf("empty-key fingerprinters disagree: %q %q %q", x, y, z)
	}
	if len(x) != 32 {
		t.Errorf("fingerprint %q: %d characters, want 32", x, len(x))
	}
	// The per-process key is random, not the empty key.
	if empty := NewFingerprinter(processKey()).Fingerprint(c); empty != x {
		t.Errorf("empty key does not use the process key: %q != %q", x, empty)
	}
	if len(processKey()) != 32 {
		t.Errorf("process key is %d bytes, want 32", len(processKey()))
	}
	if fmt.Sprint(processKey()) == fmt.Sprint(make([]byte, 32)) {
		t.Error("process key is all zeros")
	}
}

func TestFingerprintConcurrent(t *testing.T) {
	f := NewFingerprinter([]byte("concurrent-key"))
	creds := []Credential{
		{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass},
		{Scheme: SchemeSoTicket, Kind: KindTicket, secret: ticket},
		{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: "Cust12345", secret: soToken},
		{Scheme: SchemeXSRF, Kind: KindXSRF, secret: xsrfToken},
	}
	want := make([]string, len(creds))
	for i, c := range creds {
		want[i] = f.Fingerprint(c)
	}
	const goroutines, rounds = 32, 200
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for n := range rounds {
				i := (g + n) % len(creds)
				if got := f.Fingerprint(creds[i]); got != want[i] {
					errs <- fmt.Sprintf("goroutine %d: Fingerprint(%s) = %q, want %q", g, creds[i].Scheme, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
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

func BenchmarkFingerprint(b *testing.B) {
	f := NewFingerprinter([]byte("bench-key"))
	c := Credential{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: "Cust12345", secret: soToken}
	b.ReportAllocs()
	for b.Loop() {
		_ = f.Fingerprint(c)
	}
}

// TestXSRFDuplicateCookieWithInvalidValue: net/http drops cookie values it
// deems invalid, which must not hide a second XSRF-TOKEN from the guard.
func TestXSRFDuplicateCookieWithInvalidValue(t *testing.T) {
	r := newRequest([]hdr{{"X-Xsrf-Token", "tok1"}, {"Cookie", `XSRF-TOKEN=tok1; XSRF-TOKEN=x\y`}})
	_, err := Parse(r, Options{Schemes: AllSchemes}, "")
	f, ok := AsFailure(err)
	if !ok || f.Reason != "duplicate_xsrf_cookie" {
		t.Fatalf("err = %v, want duplicate_xsrf_cookie", err)
	}
}

// TestBasicFingerprintIgnoresBase64Spelling: non-canonical base64 of the
// same user:pass is the same credential.
func TestBasicFingerprintIgnoresBase64Spelling(t *testing.T) {
	fp := NewFingerprinter([]byte("k"))
	var got []string
	for _, v := range []string{"YWxpY2U6cGFzcw==", "YWxpY2U6cGFzcx=="} {
		c, err := Parse(newRequest([]hdr{{"Authorization", "Basic " + v}}), Options{Schemes: AllSchemes}, "")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fp.Fingerprint(c))
	}
	if got[0] != got[1] {
		t.Fatalf("fingerprints differ: %v", got)
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
