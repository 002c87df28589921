package policy

import (
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

func (p *Principal) value() ast.Value {
	items := [][2]*ast.Term{item("source", ast.StringTerm(p.Source))}
	for _, f := range [...]struct{ k, v string }{
		{"subject", p.Subject}, {"user_type", p.UserType}, {"role_name", p.RoleName},
		{"user_name", p.UserName}, {"tenant", p.Tenant},
	} {
		if f.v != "" {
			items = append(items, item(f.k, ast.StringTerm(f.v)))
		}
	}
	if p.AssociateID != 0 {
		items = append(items, item("associate_id", ast.IntNumberTerm(int(p.AssociateID))))
	}
	if p.Licenses != nil {
		items = append(items, item("licenses", stringArray(p.Licenses)))
	}
	if p.FunctionRights != nil {
		items = append(items, item("function_rights", stringArray(p.FunctionRights)))
	}
	if p.Claims != nil {
		if v, err := ast.InterfaceToValue(p.Claims); err == nil {
			items = append(items, item("claims", ast.NewTerm(v)))
		}
	}
	return ast.NewObject(items...)
}

func stringArray(ss []string) *ast.Term {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}

// Value builds the input as an OPA value directly, so evaluation needs no
// JSON round trip per request.
func (in *Input) Value() ast.Value {
	items := [][2]*ast.Term{
		item("action", ast.StringTerm(in.Action)),
		item("route", ast.StringTerm(in.Route)),
		item("tenant", ast.StringTerm(in.Tenant)),
		item("request", ast.NewTerm(in.Request.value())),
		item("credential", ast.NewTerm(in.Credential.value())),
		item("principal", ast.NewTerm(in.Principal.value())),
		item("time", ast.StringTerm(in.Time.UTC().Format(time.RFC3339Nano))),
	}
	if in.SessionID > 0 {
		items = append(items, item("session_id", ast.IntNumberTerm(int(in.SessionID))))
	}
	if in.Session != nil {
		// The entity arrives as decoded JSON (numbers as json.Number);
		// InterfaceToValue walks it without a JSON round trip.
		if v, err := ast.InterfaceToValue(in.Session); err == nil {
			items = append(items, item("session", ast.NewTerm(v)))
		}
	}
	return ast.NewObject(items...)
}

func (r *Request) value() ast.Value {
	return ast.NewObject(
		item("id", ast.StringTerm(r.ID)),
		item("method", ast.StringTerm(r.Method)),
		item("path", ast.StringTerm(r.Path)),
		item("host", ast.StringTerm(r.Host)),
		item("remote_ip", ast.StringTerm(r.RemoteIP)),
		item("headers", ast.NewTerm(multiMap(r.Headers))),
		item("query", ast.NewTerm(multiMap(r.Query))),
	)
}

func (c *Credential) value() ast.Value {
	items := [][2]*ast.Term{
		item("scheme", ast.StringTerm(c.Scheme)),
		item("kind", ast.StringTerm(c.Kind)),
		item("fingerprint", ast.StringTerm(c.Fingerprint)),
		item("tenant", ast.StringTerm(c.Tenant)),
	}
	if c.Username != "" {
		items = append(items, item("username", ast.StringTerm(c.Username)))
	}
	return ast.NewObject(items...)
}

func multiMap(m map[string][]string) ast.Value {
	obj := ast.NewObject()
	for k, vs := range m {
		terms := make([]*ast.Term, len(vs))
		for i, v := range vs {
			terms[i] = ast.StringTerm(v)
		}
		obj.Insert(ast.StringTerm(k), ast.ArrayTerm(terms...))
	}
	return obj
}

func item(k string, v *ast.Term) [2]*ast.Term { return ast.Item(ast.StringTerm(k), v) }
