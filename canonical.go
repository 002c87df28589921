package resetguard

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/internal/classify"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// What the guard decided is what the backend receives: an allowed reset
// is forwarded as a request rebuilt from the decision (the normalised
// prefix, the route spelled canonically, the decided id), so that no
// spelling, rewrite or second id source the guard did not model reaches
// the backend. What could still bind another id is refused before the
// decision (checkBinding).

// checkBinding refuses a path the guard could not read every way the
// backend might, and a reset that names the session id anywhere a model
// binder could read it besides the place the guard reads it from: an
// id-naming query parameter on any route, or any body on the REST route,
// which takes none. The Agents body's own ambiguity is judged when the id
// is read.
func (h *Handler) checkBinding(x *exchange) *refusal.Refusal {
	if x.t.Unclear {
		return refusal.New(http.StatusBadRequest, refusal.PathUnclassifiable,
			"the request path could not be classified; it may name a chat-session reset")
	}
	if ref := classify.CheckQuery(x.r.URL.RawQuery); ref != nil {
		return ref
	}
	if x.t.Route == classify.REST {
		return classify.RESTBody(x.w, x.r, h.MaxRequestBody, time.Duration(h.RequestBodyTimeout))
	}
	return nil
}

// planForward fixes the request an allowed reset will be forwarded as,
// once the session id is known, so that the intent record names it. The
// planned path must classify as the very target decided on: the backend
// reads it again with its own rewrites, and a path that reads differently
// (a segment the backend would still rewrite) is refused, not sent.
func (x *exchange) planForward() *refusal.Refusal {
	u := url.URL{Path: x.t.ForwardPath(x.sessionID)}
	f := &audit.Forwarded{Path: u.EscapedPath()}
	if !sameTarget(classify.Path(f.Path), x.t, x.sessionID) {
		return refusal.New(http.StatusBadRequest, refusal.PathUnclassifiable,
			"the request path could not be forwarded as decided")
	}
	if x.t.Route == classify.Agents {
		f.Body = `{"ChatSessionId":` + strconv.FormatInt(int64(x.sessionID), 10) + `}`
	}
	x.forwarded = f
	return nil
}

// sameTarget reports whether the forwarded path's target is the decided
// one: route, tenant, prefix and, on the REST route, the id.
func sameTarget(got, want classify.Target, id int32) bool {
	if got.Route != want.Route || got.Unclear || got.Tenant != want.Tenant || !strings.EqualFold(got.Prefix, want.Prefix) {
		return false
	}
	if want.Route != classify.REST {
		return true
	}
	n, err := classify.SessionID(got.IDSegment)
	return err == nil && n == id
}

// rewrite turns the client's request into the planned one, just before it
// is forwarded. The query string (judged by checkBinding) and the headers
// stay as sent; the SOAP envelope, read and judged whole, stays too.
func (x *exchange) rewrite() {
	r, f := x.r, x.forwarded
	r.URL.Path, r.URL.RawPath = x.t.ForwardPath(x.sessionID), ""
	switch x.t.Route {
	case classify.REST:
		setBody(r, nil)
		r.Header.Del("Content-Type")
	case classify.Agents:
		setBody(r, []byte(f.Body))
		r.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
}

// setBody replaces r's body with b (none when empty), with the framing
// headers that describe it.
func setBody(r *http.Request, b []byte) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	r.TransferEncoding = nil
	r.Header.Del("Content-Encoding")
	r.Header.Del("Transfer-Encoding")
	r.ContentLength = int64(len(b))
	if len(b) == 0 {
		r.Body, r.GetBody = http.NoBody, nil
		r.Header.Del("Content-Length")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.Header.Set("Content-Length", strconv.Itoa(len(b)))
}
