package credential

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// credentialReasons are the reasons Parse may give.
var credentialReasons = map[string]bool{
	refusal.MissingCredentials: true, refusal.MalformedAuthorization: true, refusal.MalformedBasic: true,
	refusal.MalformedBearer: true, refusal.DuplicateAuthorization: true, refusal.SchemeNotAccepted: true,
	refusal.TenantMismatch: true, refusal.XSRFMismatch: true, refusal.XSRFEmpty: true,
	refusal.XSRFCookieMissing: true, refusal.DuplicateXSRFCookie: true, refusal.DuplicateXSRFHeader: true,
	refusal.JWTNotVerifiable: true,
}

// FuzzParse feeds arbitrary Authorization, X-XSRF-TOKEN and Cookie
// headers (invalid UTF-8, control bytes, many copies) to Parse.
// Properties: no panic; every failure is a 401 *refusal.Refusal with one
// credential reason and the fixed message, whose text is those fixed words
// plus the cause; two Authorization headers are always refused; a success
// has a scheme the options accept; neither the cause nor the credential's
// printed form contains the presented secret (checked for secrets of 8
// bytes or more). The fixed words are checked for equality, not searched
// for the secret: a secret may spell one of them.
func FuzzParse(f *testing.F) {
	f.Add("Basic YWxpY2U6czNjcjN0", "", "", "", "")
	f.Add("Basic YWxpY2U6czNjcjN0", "Basic Ym9iOnB3", "", "", "")
	f.Add("SOTICKET 7T:dGlja2V0LXNlY3JldA==", "", "", "", "")
	f.Add("Bearer 8A:Cust12345.c2VjcmV0LXRva2Vu", "", "", "", "Cust12345")
	f.Add("Bearer 8A:Cust1.c2VjcmV0", "", "", "", "Cust2")
	f.Add("Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "", "", "", "")
	f.Add("", "", "xsrf-value-0001", "XSRF-TOKEN=xsrf-value-0001", "")
	f.Add("", "", "xsrf-value-0001", "XSRF-TOKEN=xsrf-value-0001; XSRF-TOKEN=other", "")
	f.Add("Basic \xff\xfe", "", "", "", "")
	f.Add("Digest username=x", "", "", "", "")
	f.Add("  basic   YWxpY2U6czNjcjN0  ", "", "", "", "")
	f.Fuzz(func(t *testing.T, authz1, authz2, xsrf, cookie, pathTenant string) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/1/Reset", nil)
		if authz1 != "" {
			r.Header.Add(HeaderAuthorization, authz1)
		}
		if authz2 != "" {
			r.Header.Add(HeaderAuthorization, authz2)
		}
		if xsrf != "" {
			r.Header.Set(HeaderXSRF, xsrf)
		}
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		opts := Options{Schemes: []Scheme{SchemeBasic, SchemeSoTicket, SchemeBearer}}
		if strings.HasPrefix(pathTenant, "x") {
			opts.Schemes = AllSchemes
		}
		c, err := Parse(r, opts, pathTenant)
		if authz1 != "" && authz2 != "" && err == nil {
			t.Fatalf("two Authorization headers accepted: %v", c)
		}
		secrets := []string{}
		for _, s := range []string{authz1, authz2, xsrf} {
			if _, v, ok := strings.Cut(strings.TrimSpace(s), " "); ok && len(strings.TrimSpace(v)) >= 8 {
				secrets = append(secrets, strings.TrimSpace(v))
			}
		}
		if err != nil {
			checkFuzzRefusal(t, err, secrets)
			if c != (Credential{}) {
				t.Fatalf("failure %v with a credential %v", err, c)
			}
			return
		}
		if !opts.accepts(c.Scheme) || c.Kind == "" || c.secret == "" {
			t.Fatalf("accepted credential %v with secret %t", c, c.secret != "")
		}
		if c.Kind == KindJWT {
			t.Fatalf("a JWT accepted without AcceptJWT: %v", c)
		}
		printed := fmt.Sprintf("%v %+v %#v %s", c, c, c, c)
		if len(c.secret) >= 8 && strings.Contains(printed, c.secret) {
			t.Fatalf("printed credential %q contains its secret", printed)
		}
	})
}

// checkFuzzRefusal asserts FuzzParse's properties of a failure.
func checkFuzzRefusal(t *testing.T, err error, secrets []string) {
	t.Helper()
	rf, ok := refusal.As(err)
	if !ok || rf.Status != http.StatusUnauthorized || rf.Message != refusal.MessageUnauthenticated ||
		len(rf.Reasons) != 1 || !credentialReasons[rf.Reasons[0]] {
		t.Fatalf("error %#v is not a 401 refusal with one credential reason", err)
	}
	if want := refusal.Unauthenticated(rf.Reasons[0], rf.InvalidToken).Wrap(rf.Err).Error(); err.Error() != want {
		t.Fatalf("error text %q is more than the fixed words and the cause (%q)", err, want)
	}
	if rf.Err == nil {
		return
	}
	for _, s := range secrets {
		if strings.Contains(rf.Err.Error(), s) {
			t.Fatalf("cause %q contains the presented secret", rf.Err)
		}
	}
}
