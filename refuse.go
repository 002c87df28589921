package resetguard

import (
	"encoding/json"
	"encoding/xml"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// finish is the one way a guarded request ends refused, before or after
// forwarding: the record is written first, then the response. Its outcome
// follows from what the backend can have done (unansweredOutcome, with the
// refusal's cause): failure for a refusal before forwarding or a request
// that never reached a backend, unknown for a forwarded one whose answer
// was lost. The client's status and body do not depend on it.
func (h *Handler) finish(x *exchange, ref *refusal.Refusal) error {
	x.markDecided()
	x.status = ref.Status
	for k, vs := range ref.Header {
		x.w.Header()[k] = vs
	}
	if ref.Challenge {
		for _, c := range credential.Challenges(h.credOpts, h.Realm, ref.InvalidToken) {
			x.w.Header().Add("WWW-Authenticate", c)
		}
	}
	reason := ref.Reason()
	if reason == "" {
		reason = refusal.PolicyDenied // a policy may name an empty reason
	}
	h.emit(x, x.unansweredOutcome(ref.Err), reason)
	return h.respondError(x, newErrorBody(ref.Status, ref.Reasons, ref.Message, x.requestID))
}

// respondError sends a refusal whose record is already written: the body
// itself, or, with errors handle_errors, a caddyhttp.HandlerError for the
// server's error routes, which find the body's fields in placeholders.
func (h *Handler) respondError(x *exchange, b errorBody) error {
	if repl, ok := x.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.reset_guard.error_type", b.ErrorType)
		repl.Set("http.reset_guard.error_message", b.ErrorMessage)
		repl.Set("http.reset_guard.error_body", string(b.json()))
		// The reasons the client is told, also when an allowed reset
		// failed at the backend (upstream_error, not the policy's).
		repl.Set("http.reset_guard.reasons", strings.Join(b.Reasons, ","))
	}
	if h.Errors == ErrorsHandleErrors {
		return caddyhttp.Error(b.Status, &refusalError{body: b})
	}
	writeError(x.w, x.r, b)
	return nil
}

// refusalError is the error a refused reset returns with errors
// handle_errors; its text is {http.error.message}. It holds fixed texts
// and policy reasons only, never request data.
type refusalError struct{ body errorBody }

func (e *refusalError) Error() string {
	return "reset_guard: " + e.body.ErrorType + ": " + e.body.ErrorMessage + " (" + strings.Join(e.body.Reasons, ",") + ")"
}

// errorSource names the guard in the ErrorSource field, so that a client
// can tell a refusal by the gateway from an error of the SuperOffice
// backend, which uses the same body shape.
const errorSource = "ResetGuard"

// errorBody is the body of every response the guard itself writes: the
// SuperOffice WebAPI error shape ({"Error": true, "ErrorType",
// "ErrorMessage", "ErrorSource"}), which SuperOffice clients already
// parse, plus the policy's reasons, the status and the request id.
type errorBody struct {
	XMLName      xml.Name `json:"-" xml:"ResetGuardError"`
	Error        bool     `json:"Error" xml:"Error"`
	ErrorType    string   `json:"ErrorType" xml:"ErrorType"`
	ErrorMessage string   `json:"ErrorMessage" xml:"ErrorMessage"`
	ErrorSource  string   `json:"ErrorSource" xml:"ErrorSource"`
	Status       int      `json:"Status" xml:"Status"`
	Reasons      []string `json:"Reasons" xml:"Reasons>Reason"`
	RequestID    string   `json:"RequestId" xml:"RequestId"`
}

// errorTypes name each refusal status in the style of SuperOffice's
// exception names, so that a client switching on ErrorType needs no
// status table of its own.
var errorTypes = map[int]string{
	http.StatusBadRequest:            "BadRequestException",
	http.StatusUnauthorized:          "AuthenticationException",
	http.StatusForbidden:             "AccessDeniedException",
	http.StatusNotFound:              "NotFoundException",
	http.StatusMethodNotAllowed:      "MethodNotAllowedException",
	http.StatusConflict:              "ConflictException",
	http.StatusRequestEntityTooLarge: "RequestTooLargeException",
	http.StatusUnsupportedMediaType:  "UnsupportedMediaTypeException",
	http.StatusLocked:                "LockedException",
	statusClientClosed:               "ClientClosedRequestException",
	http.StatusInternalServerError:   "InternalErrorException",
	http.StatusBadGateway:            "BadGatewayException",
	http.StatusServiceUnavailable:    "ServiceUnavailableException",
	http.StatusGatewayTimeout:        "GatewayTimeoutException",
}

// errorType is the ErrorType for status; a status a policy chose that is
// not in the table gets its status text in CamelCase, letters and digits
// only ("I'm a teapot" becomes ImATeapotException).
func errorType(status int) string {
	if t, ok := errorTypes[status]; ok {
		return t
	}
	var b strings.Builder
	for word := range strings.FieldsSeq(http.StatusText(status)) {
		first := true
		for _, r := range word {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				continue
			}
			if first {
				r = unicode.ToUpper(r)
				first = false
			}
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		b.WriteString("Http" + strconv.Itoa(status))
	}
	return b.String() + "Exception"
}

func newErrorBody(status int, reasons []string, message, requestID string) errorBody {
	if reasons == nil {
		reasons = []string{}
	}
	return errorBody{
		Error:        true,
		ErrorType:    errorType(status),
		ErrorMessage: message,
		ErrorSource:  errorSource,
		Status:       status,
		Reasons:      reasons,
		RequestID:    requestID,
	}
}

// json is the body as compact JSON.
func (b errorBody) json() []byte {
	out, err := json.Marshal(b)
	if err != nil {
		// Only strings, a bool and an int: Marshal cannot fail.
		panic("reset_guard: encoding an error body: " + err.Error())
	}
	return out
}

// prefersXML reports whether an Accept header ranks an XML media type
// (application/xml, text/xml) strictly above JSON (application/json,
// text/json). Ties, wildcards alone and an absent header mean JSON: it is
// the WebAPI's default too.
func prefersXML(accept string) bool {
	if accept == "" {
		return false
	}
	var bestXML, bestJSON float64 = -1, -1
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		switch mt {
		case "application/xml", "text/xml":
			bestXML = max(bestXML, q)
		case "application/json", "text/json":
			bestJSON = max(bestJSON, q)
		}
	}
	return bestXML > 0 && bestXML > bestJSON
}

// writeError sends b as JSON, or as XML when the client prefers it.
// b.ErrorMessage must never hold request data that could carry a secret;
// callers pass fixed texts.
func writeError(w http.ResponseWriter, r *http.Request, b errorBody) {
	var body []byte
	ct := "application/json; charset=utf-8"
	if prefersXML(r.Header.Get("Accept")) {
		out, err := xml.Marshal(b)
		if err != nil {
			panic("reset_guard: encoding an error body: " + err.Error())
		}
		body = append([]byte(xml.Header), out...)
		ct = "application/xml; charset=utf-8"
	} else {
		body = b.json()
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(b.Status)
	_, _ = w.Write(body)
}
