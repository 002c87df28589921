package credential

import (
	"encoding/base64"
	"slices"
	"strings"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// hdr is one request header line, added in order.
type hdr struct{ name, value string }

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

// parseCase is one Parse call and what it must return.
type parseCase struct {
	name       string
	schemes    []Scheme // nil: AllSchemes
	headers    []hdr
	pathTenant string
	want       Credential // checked when reason is ""
	reason     string
	invalid    bool // Refusal.InvalidToken: a refused bearer token
	// secrets lists further strings that must not appear in an error;
	// every header value and the part after the scheme word are checked
	// anyway.
	secrets []string
}

func authz(v string) []hdr { return []hdr{{"Authorization", v}} }

func xsrfPair(header, cookie string) []hdr {
	return []hdr{{"X-XSRF-TOKEN", header}, {"Cookie", "XSRF-TOKEN=" + cookie}}
}

// parseCases are every Parse case. The reason words are written out, not
// taken from internal/refusal: they are a published contract (README,
// docs/audit.md), and these cases pin each word.
var parseCases = slices.Concat(basicCases, ticketCases, soTokenCases, jwtShapeCases, headerShapeCases, xsrfCases, missingCases)

// Basic: the user name is readable, the decoded user:pass is the secret.
var basicCases = []parseCase{
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
}

// SoTicket: the scheme word in any case, the ticket opaque.
var ticketCases = []parseCase{
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
}

// Bearer: SuperOffice Online tokens, whose tenant must match the path's.
var soTokenCases = []parseCase{
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
}

// Bearer: JWTs and other shapes. Without AcceptJWT a JWT is refused, never passed on unverified.
var jwtShapeCases = []parseCase{
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
}

// The shape of the Authorization header itself: one header, one credential, token68 only.
var headerShapeCases = []parseCase{
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
}

// The XSRF cookie pair: one header equal to one cookie, both non-empty.
var xsrfCases = []parseCase{
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
}

// Nothing usable.
var missingCases = []parseCase{
	{name: "no credentials", headers: nil, reason: "missing_credentials"},
	{name: "cookie without header", headers: []hdr{{"Cookie", "XSRF-TOKEN=" + xsrfToken}}, reason: "missing_credentials"},
	{name: "app token alone", headers: []hdr{{"SO-AppToken", appToken}}, reason: "missing_credentials"},
	{name: "no schemes accepted", schemes: []Scheme{}, headers: authz("Basic " + basicValue), reason: "scheme_not_accepted"},
}
