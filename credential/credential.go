// Package credential recognises the caller's credential on a guarded request
// (Basic, SoTicket, Bearer or the XSRF cookie pair), checks its shape, and
// derives a keyed fingerprint so that logs can correlate calls without ever
// holding the secret itself.
package credential

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// Scheme names a way of presenting a credential. The values are the
// configuration words and the `credential.scheme` values in policy input
// and audit records.
type Scheme string

// The schemes ResetGuard understands.
const (
	SchemeBasic    Scheme = "basic"
	SchemeSoTicket Scheme = "soticket"
	SchemeBearer   Scheme = "bearer"
	SchemeXSRF     Scheme = "xsrf"
)

// AllSchemes lists every scheme in the order they are advertised in
// WWW-Authenticate.
var AllSchemes = []Scheme{SchemeBasic, SchemeSoTicket, SchemeBearer, SchemeXSRF}

// ParseScheme maps a configuration word (case-insensitive) to a Scheme.
func ParseScheme(s string) (Scheme, error) {
	for _, sc := range AllSchemes {
		if strings.EqualFold(s, string(sc)) {
			return sc, nil
		}
	}
	return "", fmt.Errorf("unknown credential scheme %q (want basic, soticket, bearer or xsrf)", s)
}

// Kind says what the credential is, beyond the scheme that carried it.
type Kind string

// The credential kinds.
const (
	KindBasic            Kind = "basic"
	KindTicket           Kind = "ticket"
	KindSuperOfficeToken Kind = "superoffice_token"
	KindJWT              Kind = "jwt"
	KindXSRF             Kind = "xsrf"
)

// Header and cookie names that carry secrets. They are never copied into
// policy input, audit records or errors.
const (
	HeaderAuthorization = "Authorization"
	HeaderXSRF          = "X-Xsrf-Token"
	CookieXSRF          = "XSRF-TOKEN"
	HeaderAppToken      = "So-Apptoken"
)

// Credential is a recognised credential. Secret holds the raw value and
// exists only to compute the fingerprint: it must never be logged.
type Credential struct {
	// Scheme is how the credential was presented.
	Scheme Scheme
	// Kind is what the credential is: an 8A: token and a JWT are both
	// bearer tokens, but only the JWT can be verified here.
	Kind Kind
	// Tenant is the SuperOffice Online tenant named by an 8A: token.
	Tenant string
	// Username is the Basic user name, the only identity readable
	// without a lookup.
	Username string
	secret   string
}

// BearerToken returns the token of a KindJWT credential, for
// verification; "" for every other kind.
func (c Credential) BearerToken() string {
	if c.Kind != KindJWT {
		return ""
	}
	return c.secret
}

// String describes c without its secret.
func (c Credential) String() string {
	return fmt.Sprintf("credential{scheme=%s kind=%s tenant=%q username=%q}", c.Scheme, c.Kind, c.Tenant, c.Username)
}

// Format keeps the secret out of every fmt verb, %#v included.
func (c Credential) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// unauthenticated is the refusal of a credential that is missing or not
// accepted. It names the reason only: the presented value must never reach
// an error body or a log.
func unauthenticated(reason string) error { return refusal.Unauthenticated(reason, false) }

// refusedBearer is the refusal of a bearer token that was presented: RFC
// 6750 §3.1 wants its challenge to say error="invalid_token".
func refusedBearer(reason string) error { return refusal.Unauthenticated(reason, true) }

// Options selects which schemes are accepted.
type Options struct {
	// Schemes are the accepted schemes, in the order their challenges
	// are advertised.
	Schemes []Scheme
	// AcceptJWT admits JWT-shaped bearer tokens as KindJWT; the caller
	// must then verify them (JWTVerifier). Without it they are refused,
	// never passed on with claims nobody checked.
	AcceptJWT bool
}

func (o Options) accepts(s Scheme) bool {
	for _, sc := range o.Schemes {
		if sc == s {
			return true
		}
	}
	return false
}

// Parse finds exactly one credential on r. pathTenant is the Online tenant
// named by the request path ("" when none); an 8A: token for another tenant
// is refused. Every failure is a 401 *refusal.Refusal whose reason is one
// of the credential reasons of internal/refusal; a refused bearer token
// has InvalidToken set.
func Parse(r *http.Request, opts Options, pathTenant string) (Credential, error) {
	authz := r.Header.Values(HeaderAuthorization)
	switch len(authz) {
	case 0:
		return parseXSRF(r, opts)
	case 1:
	default:
		return Credential{}, unauthenticated(refusal.DuplicateAuthorization)
	}
	word, value, ok := strings.Cut(strings.TrimSpace(authz[0]), " ")
	value = strings.TrimLeft(value, " ")
	if !ok || value == "" {
		return Credential{}, unauthenticated(refusal.MalformedAuthorization)
	}
	if !isToken68(value) {
		return Credential{}, unauthenticated(refusal.MalformedAuthorization)
	}
	switch {
	case strings.EqualFold(word, "Basic"):
		if !opts.accepts(SchemeBasic) {
			return Credential{}, unauthenticated(refusal.SchemeNotAccepted)
		}
		return parseBasic(value)
	case strings.EqualFold(word, "SoTicket"):
		if !opts.accepts(SchemeSoTicket) {
			return Credential{}, unauthenticated(refusal.SchemeNotAccepted)
		}
		return Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: value}, nil
	case strings.EqualFold(word, "Bearer"):
		if !opts.accepts(SchemeBearer) {
			return Credential{}, unauthenticated(refusal.SchemeNotAccepted)
		}
		return parseBearer(value, pathTenant, opts.AcceptJWT)
	default:
		return Credential{}, unauthenticated(refusal.SchemeNotAccepted)
	}
}

// FromSOAPTicket is the credential of a SOAP call that carries its ticket
// in the envelope (<Credentials><Ticket>), which the SOAP service
// authenticates instead of any HTTP header. A request with an
// Authorization or X-XSRF-TOKEN header as well is refused: the guard
// would decide on one identity while the backend acts on the other.
// Failures are 401 refusals, as Parse's.
func FromSOAPTicket(r *http.Request, opts Options, ticket string) (Credential, error) {
	if len(r.Header.Values(HeaderAuthorization)) > 0 || len(r.Header.Values(HeaderXSRF)) > 0 {
		return Credential{}, unauthenticated(refusal.DuplicateAuthorization)
	}
	if !opts.accepts(SchemeSoTicket) {
		return Credential{}, unauthenticated(refusal.SchemeNotAccepted)
	}
	if ticket == "" || !isToken68(ticket) {
		return Credential{}, unauthenticated(refusal.MalformedAuthorization)
	}
	return Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: ticket}, nil
}

func parseBasic(value string) (Credential, error) {
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		// The decoder's error names a byte offset, never the value.
		return Credential{}, refusal.Unauthenticated(refusal.MalformedBasic, false).
			Wrap(fmt.Errorf("credential: decoding Basic credentials: %w", err))
	}
	user, _, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return Credential{}, unauthenticated(refusal.MalformedBasic)
	}
	// The decoded form is the secret, so that non-canonical base64 of the
	// same user:pass has the same fingerprint.
	return Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: user, secret: string(raw)}, nil
}

// superOfficeTokenPrefix starts SuperOffice Online reference tokens; the
// tenant runs from it to the first dot.
const superOfficeTokenPrefix = "8A:"

func parseBearer(value, pathTenant string, acceptJWT bool) (Credential, error) {
	if strings.HasPrefix(value, superOfficeTokenPrefix) {
		tenant, rest, ok := strings.Cut(value[len(superOfficeTokenPrefix):], ".")
		if !ok || tenant == "" || rest == "" {
			return Credential{}, refusedBearer(refusal.MalformedBearer)
		}
		if pathTenant != "" && !strings.EqualFold(tenant, pathTenant) {
			return Credential{}, refusedBearer(refusal.TenantMismatch)
		}
		return Credential{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: canonicalTenant(tenant), secret: value}, nil
	}
	if looksLikeJWT(value) && acceptJWT {
		return Credential{Scheme: SchemeBearer, Kind: KindJWT, secret: value}, nil
	}
	if looksLikeJWT(value) {
		// JWTs are accepted only once they can be verified against a
		// configured issuer; until then an unverifiable token is refused
		// rather than passed on with claims nobody checked.
		return Credential{}, refusedBearer(refusal.JWTNotVerifiable)
	}
	return Credential{}, refusedBearer(refusal.MalformedBearer)
}

// canonicalTenant spells an Online context identifier as SuperOffice
// does ("Cust12345"), so that policies and records compare one form.
func canonicalTenant(t string) string {
	if len(t) > 4 && strings.EqualFold(t[:4], "cust") && strings.Trim(t[4:], "0123456789") == "" {
		return "Cust" + t[4:]
	}
	return t
}

// looksLikeJWT reports a compact JWS shape: three non-empty base64url parts.
func looksLikeJWT(s string) bool {
	parts := 0
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if i == start {
				return false
			}
			parts++
			start = i + 1
			continue
		}
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return parts == 3
}

// isToken68 checks the RFC 7235 token68 alphabet, plus ':' and '.', which
// SuperOffice tickets and tokens use. It keeps control characters, spaces
// and commas (a folded second credential) out.
func isToken68(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/', c == '=', c == ':':
		default:
			return false
		}
	}
	return true
}

func parseXSRF(r *http.Request, opts Options) (Credential, error) {
	headers := r.Header.Values(HeaderXSRF)
	if len(headers) == 0 {
		return Credential{}, unauthenticated(refusal.MissingCredentials)
	}
	if !opts.accepts(SchemeXSRF) {
		return Credential{}, unauthenticated(refusal.SchemeNotAccepted)
	}
	if len(headers) > 1 {
		return Credential{}, unauthenticated(refusal.DuplicateXSRFHeader)
	}
	cookie, n := xsrfCookie(r.Header.Values("Cookie"))
	switch {
	case n == 0:
		return Credential{}, unauthenticated(refusal.XSRFCookieMissing)
	case n > 1:
		return Credential{}, unauthenticated(refusal.DuplicateXSRFCookie)
	}
	header := headers[0]
	if header == "" || cookie == "" {
		return Credential{}, unauthenticated(refusal.XSRFEmpty)
	}
	if subtle.ConstantTimeCompare([]byte(header), []byte(cookie)) != 1 {
		return Credential{}, unauthenticated(refusal.XSRFMismatch)
	}
	return Credential{Scheme: SchemeXSRF, Kind: KindXSRF, secret: cookie}, nil
}

// xsrfCookie finds the XSRF-TOKEN cookie pairs in the raw Cookie headers.
// net/http's cookie parser silently drops values it deems invalid, which
// would hide a second XSRF-TOKEN that the backend may still see; counting
// raw pairs keeps "exactly one cookie" exact.
func xsrfCookie(headers []string) (value string, n int) {
	for _, h := range headers {
		for part := range strings.SplitSeq(h, ";") {
			name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			if !strings.EqualFold(strings.TrimSpace(name), CookieXSRF) {
				continue
			}
			n++
			val = strings.TrimSpace(val)
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			value = val
		}
	}
	return value, n
}

// Challenges returns the WWW-Authenticate values for the accepted schemes.
// The XSRF pair is not an HTTP authentication scheme and has no challenge.
// invalidToken (a refused bearer token, refusal.Refusal.InvalidToken)
// adds error="invalid_token" to the Bearer challenge, so that a client
// can tell a rejected token from a missing one (RFC 6750 §3.1).
func Challenges(opts Options, realm string, invalidToken bool) []string {
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(realm)
	var out []string
	for _, s := range opts.Schemes {
		switch s {
		case SchemeBasic:
			out = append(out, `Basic realm="`+q+`", charset="UTF-8"`)
		case SchemeSoTicket:
			out = append(out, `SoTicket realm="`+q+`"`)
		case SchemeBearer:
			v := `Bearer realm="` + q + `"`
			if invalidToken {
				v += `, error="invalid_token"`
			}
			out = append(out, v)
		}
	}
	return out
}
