package policy

import (
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// InputSchema names the version of the input document.
const InputSchema = "resetguard.input/v1"

// Input is the resetguard.input/v1 document. It never holds a credential:
// callers copy only allow-listed, non-secret headers into Request.Headers.
type Input struct {
	Action     string
	Route      string
	SessionID  int32 // 0 when the id could not be read
	Tenant     string
	Request    Request
	Credential Credential
	Principal  Principal
	// Session is the current ChatSessionEntity (redacted), when a
	// pre-reset lookup is configured; nil otherwise.
	Session map[string]any
	Time    time.Time
}

// Request describes the HTTP request without its secrets.
type Request struct {
	ID       string
	Method   string
	Path     string
	Host     string
	RemoteIP string
	Headers  map[string][]string // lower-case names
	Query    map[string][]string
}

// Credential describes the presented credential by its shape and keyed
// fingerprint, never by its value.
type Credential struct {
	Scheme      string
	Kind        string
	Fingerprint string
	Tenant      string
	Username    string
}

// Principal is who is calling, as far as it is known. Empty fields are
// left out of the input.
type Principal struct {
	Source         string // "jwt", "backend" or "none"
	Subject        string
	AssociateID    int64
	UserType       string
	RoleName       string
	UserName       string
	Tenant         string
	Licenses       []string
	FunctionRights []string
	Claims         map[string]any // verified JWT claims
}

// The input's keys, and values that recur on most requests, are built
// once: an evaluation never changes a term, so one term serves every
// request (OPA shares its own interned terms the same way). Building them
// per request was two allocations each, for some thirty keys.
var (
	keyAction, keyRoute, keySessionID  = ast.StringTerm("action"), ast.StringTerm("route"), ast.StringTerm("session_id")
	keyTenant, keyRequest, keyTime     = ast.StringTerm("tenant"), ast.StringTerm("request"), ast.StringTerm("time")
	keyCredential, keyPrincipal        = ast.StringTerm("credential"), ast.StringTerm("principal")
	keySession                         = ast.StringTerm("session")
	keyID, keyMethod, keyPath, keyHost = ast.StringTerm("id"), ast.StringTerm("method"), ast.StringTerm("path"), ast.StringTerm("host")
	keyRemoteIP, keyHeaders, keyQuery  = ast.StringTerm("remote_ip"), ast.StringTerm("headers"), ast.StringTerm("query")
	keyScheme, keyKind, keyFingerprint = ast.StringTerm("scheme"), ast.StringTerm("kind"), ast.StringTerm("fingerprint")
	keyUsername, keySource, keySubject = ast.StringTerm("username"), ast.StringTerm("source"), ast.StringTerm("subject")
	keyUserType, keyRoleName           = ast.StringTerm("user_type"), ast.StringTerm("role_name")
	keyUserName, keyAssociateID        = ast.StringTerm("user_name"), ast.StringTerm("associate_id")
	keyLicenses, keyFunctionRights     = ast.StringTerm("licenses"), ast.StringTerm("function_rights")
	keyClaims                          = ast.StringTerm("claims")
	knownValues                        = knownTerms(
		"", "chat_session.reset", "rest", "agents", "soap", "POST",
		"basic", "bearer", "ticket", "xsrf", "jwt", "superoffice_token", "none", "backend",
	)
)

func knownTerms(ss ...string) map[string]*ast.Term {
	m := make(map[string]*ast.Term, len(ss))
	for _, s := range ss {
		m[s] = ast.StringTerm(s)
	}
	return m
}

// terms hands out the terms of one input document from one allocation
// instead of one each; past its capacity it allocates as usual (append
// would move the terms already handed out).
type terms []ast.Term

func (a *terms) term(v ast.Value) *ast.Term {
	if len(*a) == cap(*a) {
		return ast.NewTerm(v)
	}
	*a = append(*a, ast.Term{Value: v})
	return &(*a)[len(*a)-1]
}

// str is s as a term: the shared one for a value every request has.
func (a *terms) str(s string) *ast.Term {
	if t, ok := knownValues[s]; ok {
		return t
	}
	return a.term(ast.String(s))
}

func (p *Principal) value(a *terms) ast.Value {
	items := make([][2]*ast.Term, 0, 10)
	items = append(items, [2]*ast.Term{keySource, a.str(p.Source)})
	for _, f := range [...]struct {
		k *ast.Term
		v string
	}{
		{keySubject, p.Subject}, {keyUserType, p.UserType}, {keyRoleName, p.RoleName},
		{keyUserName, p.UserName}, {keyTenant, p.Tenant},
	} {
		if f.v != "" {
			items = append(items, [2]*ast.Term{f.k, a.str(f.v)})
		}
	}
	if p.AssociateID != 0 {
		items = append(items, [2]*ast.Term{keyAssociateID, a.term(ast.Number(strconv.FormatInt(p.AssociateID, 10)))})
	}
	if p.Licenses != nil {
		items = append(items, [2]*ast.Term{keyLicenses, a.stringArray(p.Licenses)})
	}
	if p.FunctionRights != nil {
		items = append(items, [2]*ast.Term{keyFunctionRights, a.stringArray(p.FunctionRights)})
	}
	if p.Claims != nil {
		if v, err := ast.InterfaceToValue(p.Claims); err == nil {
			items = append(items, [2]*ast.Term{keyClaims, ast.NewTerm(v)})
		}
	}
	return ast.NewObject(items...)
}

func (a *terms) stringArray(ss []string) *ast.Term {
	elems := make([]*ast.Term, len(ss))
	for i, s := range ss {
		elems[i] = a.str(s)
	}
	return a.term(ast.NewArray(elems...))
}

// Value builds the input as an OPA value directly, so evaluation needs no
// JSON round trip per request.
func (in *Input) Value() ast.Value {
	a := make(terms, 0, 32)
	items := make([][2]*ast.Term, 0, 9)
	items = append(items,
		[2]*ast.Term{keyAction, a.str(in.Action)},
		[2]*ast.Term{keyRoute, a.str(in.Route)},
		[2]*ast.Term{keyTenant, a.str(in.Tenant)},
		[2]*ast.Term{keyRequest, a.term(in.Request.value(&a))},
		[2]*ast.Term{keyCredential, a.term(in.Credential.value(&a))},
		[2]*ast.Term{keyPrincipal, a.term(in.Principal.value(&a))},
		[2]*ast.Term{keyTime, a.str(in.Time.UTC().Format(time.RFC3339Nano))},
	)
	if in.SessionID > 0 {
		items = append(items, [2]*ast.Term{keySessionID, a.term(ast.Number(strconv.FormatInt(int64(in.SessionID), 10)))})
	}
	if in.Session != nil {
		// The entity arrives as decoded JSON (numbers as json.Number);
		// InterfaceToValue walks it without a JSON round trip.
		if v, err := ast.InterfaceToValue(in.Session); err == nil {
			items = append(items, [2]*ast.Term{keySession, ast.NewTerm(v)})
		}
	}
	return ast.NewObject(items...)
}

func (r *Request) value(a *terms) ast.Value {
	return ast.NewObject(
		[2]*ast.Term{keyID, a.str(r.ID)},
		[2]*ast.Term{keyMethod, a.str(r.Method)},
		[2]*ast.Term{keyPath, a.str(r.Path)},
		[2]*ast.Term{keyHost, a.str(r.Host)},
		[2]*ast.Term{keyRemoteIP, a.str(r.RemoteIP)},
		[2]*ast.Term{keyHeaders, a.multiMap(r.Headers)},
		[2]*ast.Term{keyQuery, a.multiMap(r.Query)},
	)
}

func (c *Credential) value(a *terms) ast.Value {
	items := make([][2]*ast.Term, 0, 5)
	items = append(items,
		[2]*ast.Term{keyScheme, a.str(c.Scheme)},
		[2]*ast.Term{keyKind, a.str(c.Kind)},
		[2]*ast.Term{keyFingerprint, a.str(c.Fingerprint)},
		[2]*ast.Term{keyTenant, a.str(c.Tenant)},
	)
	if c.Username != "" {
		items = append(items, [2]*ast.Term{keyUsername, a.str(c.Username)})
	}
	return ast.NewObject(items...)
}

// multiMap is a header or query map as an object of string arrays; an
// empty one is the shared empty object.
func (a *terms) multiMap(m map[string][]string) *ast.Term {
	if len(m) == 0 {
		return ast.InternedEmptyObject
	}
	items := make([][2]*ast.Term, 0, len(m))
	for k, vs := range m {
		items = append(items, [2]*ast.Term{a.str(k), a.stringArray(vs)})
	}
	return a.term(ast.NewObject(items...))
}
