package resetguard

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/resetguard/caddy-resetguard/internal/classify/soaptest"
)

// guardSeed is one request of FuzzGuardMatchesBackend's seed corpus.
type guardSeed struct {
	method, path, query, contentType, soapAction, override, body string
}

// guardSeeds are the known forms of the three reset routes and their
// neighbours: every spelling the backend model knows, so that the fuzzer
// starts from each.
var guardSeeds = func() []guardSeed {
	const rest = "/api/v1/ChatSession/427/Reset"
	const agents = "/api/v1/Agents/Chat/ResetChatSession"
	const soap = "/Remote/Services88/Chat.svc"
	const form = "application/x-www-form-urlencoded"
	const json = "application/json"
	seeds := []guardSeed{
		{path: rest},
		{method: "post", path: rest},
		{method: "GET", path: rest},
		{method: "GET", path: rest, override: "POST"},
		{path: "/API/V1/CHATSESSION/427/RESET"},
		{path: "/SuperOffice/api/v1/chatsession/427/reset/"},
		{path: "/Cust12345/api/v1/ChatSession/427/Reset"},
		{path: "/api/v1/ChatSession/427/Re%73et"},
		{path: "/api/v1/ChatSession/427/Re%2573et"},
		{path: "/api/v1/ChatSession/427/Re%25u0073et"},
		{path: "/api%5Cv1%5CChatSession%5C427%5CReset"},
		{path: `/api/v1/ChatSession\427\Reset`},
		{path: "/api/v1/x/../ChatSession/./427/Reset"},
		{path: "/api//v1/ChatSession//427/Reset"},
		{path: "/api/v1/ChatSession/427/Reset."},
		{path: "/api/v1/ChatSession/427/Reset%20"},
		{path: "/api/v1/ChatSession/427./Reset"},
		{path: "/api/v1/ChatSession/427/(S(x))/Reset"},
		{path: "/(A(a))/api/v1/ChatSession/427/Reset"},
		{path: "/api/v1/ChatSe%C5%BFsion/427/Reset"},
		{path: "/api/v1/ChatSession/0x1AB/Reset"},
		{path: "/api/v1/ChatSession/000427/Reset"},
		{path: "/api/v1/ChatSession/2147483648/Reset"},
		{path: rest, query: "chatSessionId=2"},
		{path: rest, query: "id=2"},
		{path: rest, query: "chatSessionId=427"},
		// Token soups: byte-level mutations (deleting, duplicating,
		// swapping ranges) recombine what a seed already holds, so these
		// near misses ("Rese") carry the path tokens IIS and System.Web
		// treat specially.
		{path: "/Cust12345/(S(a)).%5C..%2F/api/v1/ChatSession/0427.%20/(F(b)A(c))/Rese%3F/%2e%2E/..;/.../x//..%5C%252E"},
		{path: "/api/v1/ChatSession/427/Rese/x/..;/%252e%252e/%2E/.%20/(S(y))/.../..//..", query: "chatSessionId=427&x=%u0032"},
		{path: "/SuperOffice/api/v1/Chat%53ession/%2B427/Re%C5%BFe./(X(1))/%2e./..%2f../%23/Rese"},
		{path: "/api/v1/ChatSession/427/Pickup"},
		{method: "GET", path: "/api/v1/ChatSession/427"},
		{path: agents, contentType: json, body: `{"ChatSessionId":831}`},
		{path: agents, contentType: json, body: `{"chatsessionid":"831"}`},
		{path: agents, contentType: json, body: `{"ChatSessionId":1,"ChatSessionId":2}`},
		{path: agents, contentType: "text/json; charset=utf-8", body: `{"ChatSessionId":831.0}`},
		{path: agents, contentType: form, body: "ChatSessionId=831"},
		{path: agents, contentType: form, body: "ChatSessionId=1&ChatSessionId=2"},
		{path: agents, contentType: form, body: "ChatSessionId=1&request.ChatSessionId=2"},
		{path: agents, contentType: form, body: "request[ChatSessionId]=2&ChatSessionId=1"},
		{path: agents, contentType: form, body: "[ChatSessionId]=2&ChatSessionId=1"},
		{path: agents, contentType: form, body: "ChatSessionId[]=2&ChatSessionId=1"},
		{path: agents, contentType: "application/xml", body: "<ResetChatSession><ChatSessionId>831</ChatSessionId></ResetChatSession>"},
		{path: agents, query: "request.chatSessionId=2", contentType: json, body: `{"ChatSessionId":1}`},
		{path: agents, body: `{"ChatSessionId":831}`},
		{path: "/Cust12345/api/v1/agents/chat/resetchatsession", contentType: json, body: `{"ChatSessionId":831}`},
		{path: soap, contentType: soaptest.ContentType11, soapAction: soaptest.ResetAction,
			body: soaptest.Envelope("", soaptest.Reset("427"))},
		{path: soap, contentType: soaptest.ContentType12, body: soaptest.Envelope("", soaptest.Reset("427"))},
		{path: "/SuperOffice/Remote/Services88/chat.svc/basic", contentType: soaptest.ContentType11,
			soapAction: soaptest.Action("GetChatSessionEntity"), body: soaptest.Envelope("", soaptest.Get("427"))},
	}
	for i := range seeds {
		if seeds[i].method == "" {
			seeds[i].method = http.MethodPost
		}
	}
	return seeds
}()

// FuzzGuardMatchesBackend checks the guard against the backend model
// (backendmodel_test.go) on requests built from the fuzz inputs:
//
//  1. If the backend may reset a session when sent the original request,
//     the guard refused it (next not called, exactly one record, outcome
//     failure) or guarded it and decided on that session (the record's
//     session id); it never passed it through unguarded. An outcome whose
//     id cannot be known must have been refused.
//  2. What reaches the next handler is judged as the backend would see it
//     (method, escaped path, raw query, headers and body as next reads
//     them): a request passed through unguarded resets nothing; a
//     guarded one forwarded with a decision on N resets N or nothing.
//
// It tests properties of what the guard decides and forwards, not the way
// it forwards (canonically).
//
// testdata/fuzz/FuzzGuardMatchesBackend/bug-* are the guard bugs this
// target found (paths the backend may route to Reset that the guard
// passed through unguarded), kept as regression seeds: internal/classify
// now reads paths every way IIS and System.Web might (readings.go).
func FuzzGuardMatchesBackend(f *testing.F) {
	for _, s := range guardSeeds {
		f.Add(s.method, s.path, s.query, s.contentType, s.soapAction, s.override, s.body)
	}
	h, logs := allowAllHandler(f)
	f.Fuzz(func(t *testing.T, method, path, query, contentType, soapAction, override, body string) {
		raw, ok := wireRequest(method, path, query, contentType, soapAction, override, body)
		if !ok {
			t.Skip("not a request Go's HTTP server would accept")
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Skip("not a request Go's HTTP server would accept")
		}
		// The original request, as sent and as Caddy holds it: an
		// unguarded reverse_proxy would send the latter.
		sent := backendRequest{Method: r.Method, Path: path, RawQuery: query, Header: r.Header.Clone(), Body: []byte(body)}
		held := sent
		held.Path, held.RawQuery = r.URL.EscapedPath(), r.URL.RawQuery
		original := mergeOutcomes(backendModel(sent), backendModel(held))

		logs.TakeAll()
		fwd, refused := serveGuard(t, h, r)
		v := judgeGuard(original, fwd, refused, logs.TakeAll())
		if len(v) == 0 {
			return
		}
		msg := fmt.Sprintf("%s %s ?%q Content-Type %q SOAPAction %q override %q body %q\n",
			method, path, query, contentType, soapAction, override, body)
		for _, x := range v {
			msg += "\t" + x.msg + "\n"
		}
		t.Fatal(msg)
	})
}

// allowAllHandler provisions a handler whose policy allows every reset,
// so that it forwards whatever it decides to allow, with an observer for
// its audit records.
func allowAllHandler(tb testing.TB) (*Handler, *observer.ObservedLogs) {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "allow.rego"), []byte("package resetguard.fuzz\n\nallow := true\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return provisioned(tb, &Handler{Policy: PolicyConfig{Paths: []string{dir}, Query: "data.resetguard.fuzz.allow"}})
}

// wireRequest writes the fuzz inputs as an HTTP/1.1 request with Basic
// credentials, or reports false for inputs no client would send or Go's
// server would refuse (a method that is no token, a target with spaces
// or control bytes, header values with control bytes).
func wireRequest(method, path, query, contentType, soapAction, override, body string) (string, bool) {
	if method == "" || len(method) > 16 || strings.IndexFunc(method, func(r rune) bool {
		return r > '~' || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	}) >= 0 {
		return "", false
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#") || len(path) > 4096 || len(query) > 4096 ||
		strings.ContainsAny(query, "#") || hasCTL(path, false) || hasCTL(query, false) {
		return "", false
	}
	for _, v := range []string{contentType, soapAction, override} {
		if hasCTL(v, true) || strings.TrimSpace(v) != v {
			return "", false
		}
	}
	var b strings.Builder
	target := path
	if query != "" {
		target += "?" + query
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: gateway.example\r\nAuthorization: Basic Ym90OnB3\r\n", method, target)
	for _, hv := range [][2]string{{"Content-Type", contentType}, {"SOAPAction", soapAction}, {"X-HTTP-Method-Override", override}} {
		if hv[1] != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", hv[0], hv[1])
		}
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String(), true
}

// hasCTL reports control bytes and, in a request target, spaces; a
// header value may hold horizontal tabs.
func hasCTL(s string, header bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0x7f || c < ' ' && !(header && c == '\t') || c == ' ' && !header {
			return true
		}
	}
	return false
}

// serveGuard runs r through h as Caddy's server would, with a next
// handler that records what it receives and answers a reset. fwd is the
// forwarded request (nil when next was not called).
func serveGuard(t *testing.T, h *Handler, r *http.Request) (fwd *backendRequest, refused bool) {
	t.Helper()
	w := httptest.NewRecorder()
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatalf("the next handler could not read the forwarded body: %v", err)
		}
		fwd = &backendRequest{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ChatSessionId":427}`))
		return nil
	})
	// A returned error is the refusal Caddy's error route would write.
	_ = h.ServeHTTP(w, r, next)
	return fwd, fwd == nil
}

// violation is one disagreement between the guard and the backend model,
// with the source of the backend outcome it is about.
type violation struct {
	msg, source string
}

// judgeGuard checks the fuzz target's two properties: original is the
// model's answer for the original request, fwd what next received (nil:
// not called), records the audit records written.
func judgeGuard(original []backendOutcome, fwd *backendRequest, refused bool, records []observer.LoggedEntry) []violation {
	var v []violation
	if refused {
		if len(records) != 1 {
			return []violation{{msg: fmt.Sprintf("not forwarded, with %d audit records, want 1", len(records))}}
		}
		if ev, _ := records[0].ContextMap()["event"].(map[string]any); ev["outcome"] != "failure" {
			return []violation{{msg: fmt.Sprintf("not forwarded, but the record's outcome is %v", ev["outcome"])}}
		}
		return nil
	}
	forwarded := resets(backendModel(*fwd))
	switch len(records) {
	case 0:
		for _, o := range resets(original) {
			v = append(v, violation{"passed through unguarded, but the backend may give: " + o.String(), o.Source})
		}
		for _, o := range forwarded {
			v = append(v, violation{"passed through unguarded, and the forwarded request may give: " + o.String(), o.Source})
		}
	case 1:
		decided := recordSessionID(records[0])
		for _, o := range resets(original) {
			if o.Kind == resetUnknowable || o.Kind == resetSession && int64(o.ID) != decided {
				v = append(v, violation{fmt.Sprintf("forwarded decided on %d, but the backend may give: %s", decided, o), o.Source})
			}
		}
		for _, o := range forwarded {
			if o.Kind == resetUnknowable || o.Kind == resetSession && int64(o.ID) != decided {
				v = append(v, violation{fmt.Sprintf("forwarded decided on %d, but the forwarded request may give: %s", decided, o), o.Source})
			}
		}
	default:
		v = append(v, violation{msg: fmt.Sprintf("forwarded with %d audit records, want 0 or 1", len(records))})
	}
	return v
}

// recordSessionID is the record's resetguard.session_id, 0 when absent.
func recordSessionID(rec observer.LoggedEntry) int64 {
	rg, _ := rec.ContextMap()["resetguard"].(map[string]any)
	switch id := rg["session_id"].(type) {
	case int32:
		return int64(id)
	case int64:
		return id
	case float64:
		return int64(id)
	}
	return 0
}

// mergeOutcomes is the union of two answers of the model, without
// duplicates and without notReset beside a reset.
func mergeOutcomes(a, b []backendOutcome) []backendOutcome {
	out := resets(a)
	for _, o := range resets(b) {
		if !slices.ContainsFunc(out, func(p backendOutcome) bool { return p.Kind == o.Kind && p.ID == o.ID && p.Source == o.Source }) {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		return []backendOutcome{{Kind: notReset}}
	}
	return out
}

// TestJudgeGuard: the fuzz target's properties, on synthetic guard
// behaviour, so that a checker that accepts everything cannot pass
// unnoticed.
func TestJudgeGuard(t *testing.T) {
	rest := func(q string) backendRequest {
		return backendRequest{Method: http.MethodPost, Path: "/api/v1/ChatSession/427/Reset", RawQuery: q, Header: http.Header{}}
	}
	other := backendRequest{Method: http.MethodGet, Path: "/api/v1/ChatSession/427", Header: http.Header{}}
	record := func(outcome string, id int32) observer.LoggedEntry {
		rg := map[string]any{}
		if id > 0 {
			rg["session_id"] = id
		}
		return observer.LoggedEntry{Context: []zapcore.Field{
			zap.Any("event", map[string]any{"outcome": outcome}), zap.Any("resetguard", rg)}}
	}
	reset427 := []backendOutcome{{Kind: resetSession, ID: 427, Source: srcRESTRoute}}
	tests := []struct {
		name     string
		original []backendOutcome
		fwd      *backendRequest
		records  []observer.LoggedEntry
		want     []string // the violations' sources; "" for one without
	}{
		{name: "refused and recorded", original: reset427, records: []observer.LoggedEntry{record("failure", 427)}},
		{name: "refused without a record", original: reset427, want: []string{""}},
		{name: "refused with a success record", original: reset427, records: []observer.LoggedEntry{record("success", 427)}, want: []string{""}},
		{name: "passed through, not a reset", original: backendModel(other), fwd: &other},
		{name: "passed through, a reset", original: reset427, fwd: ptr(rest("")), want: []string{srcRESTRoute, srcRESTRoute}},
		{name: "guarded and forwarded on its id", original: reset427, fwd: ptr(rest("")), records: []observer.LoggedEntry{record("success", 427)}},
		{name: "guarded, the backend binds another id", original: backendModel(rest("chatSessionId=2")), fwd: ptr(rest("chatSessionId=2")),
			records: []observer.LoggedEntry{record("success", 427)}, want: []string{srcRESTQuery, srcRESTQuery}},
		{name: "guarded, the id is unknowable", original: []backendOutcome{{Kind: resetUnknowable, Source: srcJSON}}, fwd: ptr(rest("")),
			records: []observer.LoggedEntry{record("success", 427)}, want: []string{srcJSON}},
		{name: "guarded, the forwarded request binds no id", original: reset427, fwd: ptr(rest("chatSessionId=x")),
			records: []observer.LoggedEntry{record("success", 427)}},
		{name: "forwarded with two records", original: reset427, fwd: ptr(rest("")),
			records: []observer.LoggedEntry{record("unknown", 427), record("success", 427)}, want: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, v := range judgeGuard(tt.original, tt.fwd, tt.fwd == nil, tt.records) {
				got = append(got, v.source)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("violations from %q, want %q", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
