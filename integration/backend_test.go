package integration_test

// The stand-in SuperOffice behind every site: it answers a reset per the
// X-Backend-Mode header (well, badly or hostilely), answers principal and
// session lookups, and remembers what it received and what it sent per
// X-Test-Case, so a suite can tell whether the guard forwarded a request
// and whether the client got the backend's bytes unchanged.

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The ChatSessionEntity the backend answers with, as JSON and as XML;
// other packages' unit tests decode the same files, so they stay in
// ../testdata.
const (
	entityFile    = "../testdata/entities/reset.json"
	entityXMLFile = "../testdata/entities/reset.xml"
)

// received is one request as the backend saw it.
type received struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

type backend struct {
	srv *httptest.Server
	// principals answers GET /api/v1/User/currentPrincipal.
	principals func(http.ResponseWriter, *http.Request)
	entity     []byte // entityFile, with ChatSessionId 427
	xml        []byte // the same as XML

	bombOnce sync.Once
	bomb     []byte

	mu   sync.Mutex
	got  map[string][]received
	sent map[string][]byte
}

var (
	idInPath     = regexp.MustCompile(`(?i)/chatsession/([0-9]+)/reset`)
	lookupInPath = regexp.MustCompile(`(?i)/chatsession/([0-9]+)$`)
)

func newBackend(t *testing.T) *backend {
	t.Helper()
	entity, err := os.ReadFile(entityFile)
	if err != nil {
		t.Fatal(err)
	}
	xmlEntity, err := os.ReadFile(entityXMLFile)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{entity: entity, xml: xmlEntity, got: map[string][]received{}, sent: map[string][]byte{}}
	b.srv = httptest.NewServer(b)
	return b
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	tc := r.Header.Get("X-Test-Case")
	b.remember(tc, received{Method: r.Method, Path: r.URL.RawPath + "|" + r.URL.Path, Header: r.Header.Clone(), Body: body})

	if strings.HasSuffix(strings.ToLower(r.URL.Path), "/api/v1/user/currentprincipal") && b.principals != nil {
		b.principals(w, r)
		return
	}
	// Lookups carry only the caller's credential headers, never the
	// suite's X-Test-Case.
	if m := lookupInPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet && tc == "" {
		b.serveLookup(w, r, m[1], body)
		return
	}
	if d, err := time.ParseDuration(r.Header.Get("X-Backend-Delay")); err == nil {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
	id := "831"
	if m := idInPath.FindStringSubmatch(r.URL.Path); m != nil {
		id = m[1]
	}
	b.serveReset(w, r, tc, id)
}

// misbehaviours answer a reset in ways a sound backend never would; the
// client's bytes are not recorded, as no complete answer exists.
var misbehaviours = map[string]func(w http.ResponseWriter, r *http.Request, entity []byte){
	"endless": serveEndless,
	"short":   serveShort,
	"hang":    serveHang,
	"hangup":  serveHangup,
	"silent":  serveSilent,
}

// serveReset answers a reset of session id per X-Backend-Mode and records
// the bytes it sent.
func (b *backend) serveReset(w http.ResponseWriter, r *http.Request, tc, id string) {
	entity := bytes.Replace(b.entity, []byte(`"ChatSessionId": 427`), []byte(`"ChatSessionId": `+id), 1)
	mode := r.Header.Get("X-Backend-Mode")
	if misbehave, ok := misbehaviours[mode]; ok {
		misbehave(w, r, entity)
		return
	}
	out, status := b.resetAnswer(w.Header(), mode, id, entity)
	b.record(tc, out)
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// resetAnswer is the body and status of a complete answer in mode, with
// its headers set on h.
func (b *backend) resetAnswer(h http.Header, mode, id string, entity []byte) ([]byte, int) {
	h.Set("Content-Type", "application/json; charset=utf-8")
	switch mode {
	case "xml":
		h.Set("Content-Type", "application/xml; charset=utf-8")
		return bytes.Replace(b.xml, []byte("<ChatSessionId>427<"), []byte("<ChatSessionId>"+id+"<"), 1), http.StatusOK
	case "gzip":
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(entity)
		_ = zw.Close()
		h.Set("Content-Encoding", "gzip")
		return buf.Bytes(), http.StatusOK
	case "500":
		return []byte(`{"Error": true, "ErrorType": "SoServerException", "ErrorMessage": "boom", "ErrorSource": "test"}`), http.StatusInternalServerError
	case "large":
		// A valid entity padded past the guard's 1 MiB hold.
		pad := strings.Repeat(" ", 2<<20)
		return append(append([]byte{}, entity[:len(entity)-1]...), []byte(pad+"}")...), http.StatusOK
	case "null":
		return []byte("null"), http.StatusOK
	case "gzip-bomb":
		h.Set("Content-Encoding", "gzip")
		return b.gzipBomb(), http.StatusOK
	}
	return entity, http.StatusOK
}

// serveEndless sends a body that never ends, until the gateway hangs up.
func serveEndless(w http.ResponseWriter, r *http.Request, _ []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	chunk := bytes.Repeat([]byte(" "), 32<<10)
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// serveShort promises more in Content-Length than it sends, then closes
// the connection.
func serveShort(w http.ResponseWriter, _ *http.Request, entity []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(entity)+5000))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(entity[:len(entity)/2])
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
		}
	}
}

// serveHang sends headers, then silence until the gateway gives up.
func serveHang(w http.ResponseWriter, r *http.Request, _ []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	select {
	case <-time.After(20 * time.Second):
	case <-r.Context().Done():
	}
}

// serveHangup takes the request (ServeHTTP has read and remembered it)
// and closes the connection without a byte of answer.
func serveHangup(w http.ResponseWriter, _ *http.Request, _ []byte) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
		}
	}
}

// serveSilent takes the request and sends nothing, not even headers,
// until the gateway gives up.
func serveSilent(_ http.ResponseWriter, r *http.Request, _ []byte) {
	select {
	case <-time.After(20 * time.Second):
	case <-r.Context().Done():
	}
}

// serveLookup answers the pre-reset GET of a session: session 77 is
// Closed, 78 fails, 79 does not exist, 80 is slower than the lookup
// timeout; the rest are InQueue.
func (b *backend) serveLookup(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	b.remember("lookup-"+id, received{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	switch id {
	case "78":
		http.Error(w, `{"Error": true}`, http.StatusInternalServerError)
		return
	case "79":
		http.Error(w, `{"Error": true, "ErrorType": "SoNotFoundException"}`, http.StatusNotFound)
		return
	case "80":
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		return
	}
	out := bytes.Replace(b.entity, []byte(`"ChatSessionId": 427`), []byte(`"ChatSessionId": `+id), 1)
	if id == "77" {
		out = bytes.Replace(out, []byte(`"Status": "InQueue"`), []byte(`"Status": "Closed"`), 1)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(out)
}

// gzipBomb is a valid entity padded with 32 MiB of spaces, gzip-compressed
// to a few dozen KiB: far past the guard's decode bound. Built once, as
// compressing it is slow under the race detector.
func (b *backend) gzipBomb() []byte {
	b.bombOnce.Do(func() {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b.entity[:bytes.LastIndexByte(b.entity, '}')])
		pad := bytes.Repeat([]byte(" "), 1<<20)
		for range 32 {
			_, _ = zw.Write(pad)
		}
		_, _ = zw.Write([]byte("}"))
		_ = zw.Close()
		b.bomb = buf.Bytes()
	})
	return b.bomb
}

func (b *backend) remember(tc string, r received) {
	b.mu.Lock()
	b.got[tc] = append(b.got[tc], r)
	b.mu.Unlock()
}

func (b *backend) record(tc string, out []byte) {
	b.mu.Lock()
	b.sent[tc] = out
	b.mu.Unlock()
}

func (b *backend) requests(tc string) []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got[tc]
}

func (b *backend) sentBody(tc string) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent[tc]
}
