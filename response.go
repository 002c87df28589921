package resetguard

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// heldResponse holds the upstream's response to a guarded request until
// the audit record is written. Unlike caddyhttp.NewResponseRecorder it
// caps what it holds: past limit bytes (or a declared Content-Length past
// limit) it calls release, which writes the record, and streams the rest
// straight through, so that a huge body costs no memory and still goes
// out only after its record.
type heldResponse struct {
	*caddyhttp.ResponseWriterWrapper
	buf       *bytes.Buffer // from heldBuffers; see free
	limit     int
	status    int
	streaming bool
	// beforeStream runs once, before the first byte reaches the client in
	// streaming mode.
	beforeStream func()
}

// Interface guards: the holder must intercept flushes (reverse_proxy
// flushes unknown-length bodies at once; letting it through would send
// the headers before the record is written) and reads-from (the wrapper's
// ReadFrom would bypass the hold).
var (
	_ http.ResponseWriter = (*heldResponse)(nil)
	_ http.Flusher        = (*heldResponse)(nil)
	_ io.ReaderFrom       = (*heldResponse)(nil)
)

// heldBuffers recycles the buffers responses are held in.
var heldBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledHold bounds the buffers kept for reuse: an entity is a few KiB,
// and keeping a rare huge one would pin its memory.
const maxPooledHold = 64 << 10

func newHeldResponse(w http.ResponseWriter, limit int, beforeStream func()) *heldResponse {
	return &heldResponse{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		buf:                   heldBuffers.Get().(*bytes.Buffer),
		limit:                 limit,
		beforeStream:          beforeStream,
	}
}

// free returns the buffer for reuse once the response and its record are
// done with it.
func (h *heldResponse) free() {
	b := h.buf
	h.buf = nil
	if b == nil || b.Cap() > maxPooledHold {
		return
	}
	b.Reset()
	heldBuffers.Put(b)
}

// WriteHeader records the status. Informational statuses pass at once:
// they carry no entity and the client may be waiting on them.
func (h *heldResponse) WriteHeader(status int) {
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		h.ResponseWriter.WriteHeader(status)
		return
	}
	if h.status != 0 {
		return
	}
	h.status = status
	if cl, err := strconv.ParseInt(h.Header().Get("Content-Length"), 10, 64); err == nil && cl > int64(h.limit) {
		h.startStreaming()
	}
}

func (h *heldResponse) Write(p []byte) (int, error) {
	if h.status == 0 {
		h.WriteHeader(http.StatusOK)
	}
	if h.streaming {
		return h.ResponseWriter.Write(p)
	}
	if h.buf.Len()+len(p) > h.limit {
		h.startStreaming()
		return h.ResponseWriter.Write(p)
	}
	return h.buf.Write(p)
}

// ReadFrom copies through Write so that nothing bypasses the hold.
func (h *heldResponse) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writerOnly{h}, r)
}

// Flush is a no-op while the response is held.
func (h *heldResponse) Flush() { _ = h.FlushError() }

// FlushError flushes only once the response streams.
func (h *heldResponse) FlushError() error {
	if !h.streaming {
		return nil
	}
	return http.NewResponseController(h.ResponseWriter).Flush()
}

func (h *heldResponse) startStreaming() {
	h.streaming = true
	if h.beforeStream != nil {
		h.beforeStream()
	}
	h.ResponseWriter.WriteHeader(h.status)
	if h.buf.Len() > 0 {
		_, _ = h.ResponseWriter.Write(h.buf.Bytes())
		h.buf.Reset()
	}
}

// held reports whether the whole response is in the buffer.
func (h *heldResponse) held() bool { return !h.streaming }

// wrote reports whether the next handler produced a response at all.
func (h *heldResponse) wrote() bool { return h.status != 0 }

// release sends the held response to the client unchanged.
func (h *heldResponse) release() error {
	if h.streaming {
		return nil
	}
	status := h.status
	if status == 0 {
		status = http.StatusOK
	}
	h.ResponseWriter.WriteHeader(status)
	if h.buf.Len() == 0 {
		return nil
	}
	_, err := h.ResponseWriter.Write(h.buf.Bytes())
	return err
}

type writerOnly struct{ io.Writer }

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
