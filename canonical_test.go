package resetguard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/resetguard/caddy-resetguard/internal/classify/soaptest"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// forwardedRequest is what the next handler (the backend, in effect)
// received.
type forwardedRequest struct {
	path, rawQuery, body, contentType string
	contentLength                     int64
}

// TestCanonicalForwarding: whatever spelling the client used, an allowed
// reset reaches the next handler as the canonical request the guard
// decided on, and the record names it.
func TestCanonicalForwarding(t *testing.T) {
	const (
		ctJSON = "application/json"
		ctForm = "application/x-www-form-urlencoded"
	)
	cases := []struct {
		name, path, contentType, body string
		want                          forwardedRequest
		wantBodyRecord                string
	}{
		{name: "rest as documented", path: "/Cust12345/api/v1/ChatSession/427/Reset",
			want: forwardedRequest{path: "/Cust12345/api/v1/ChatSession/427/Reset"}},
		{name: "rest spelled oddly", path: "/Cust12345/x/..%2F/API/v1/chatsession/%30427/(S(abc))/Reset.%20/",
			want: forwardedRequest{path: "/Cust12345/api/v1/ChatSession/427/Reset"}},
		{name: "rest double-encoded backslashes", path: `/SuperOffice%255Capi\v1\ChatSession\427\RESET`,
			want: forwardedRequest{path: "/SuperOffice/api/v1/ChatSession/427/Reset"}},
		{name: "rest empty json body dropped", path: "/api/v1/ChatSession/427/Reset", contentType: ctJSON, body: " {} ",
			want: forwardedRequest{path: "/api/v1/ChatSession/427/Reset"}},
		{name: "rest other query parameters kept", path: "/api/v1/ChatSession/427/Reset?$select=Status",
			want: forwardedRequest{path: "/api/v1/ChatSession/427/Reset", rawQuery: "$select=Status"}},
		{name: "agents form body rewritten as json", path: "/Cust1/api/v1/agents/chat/resetchatsession/", contentType: ctForm,
			body: "x=1&chatsessionid=0427",
			want: forwardedRequest{path: "/Cust1/api/v1/Agents/Chat/ResetChatSession", body: `{"ChatSessionId":427}`,
				contentType: "application/json; charset=utf-8", contentLength: 21},
			wantBodyRecord: `{"ChatSessionId":427}`},
		{name: "agents xml body rewritten as json", path: "/api/v1/Agents/Chat/ResetChatSession", contentType: "text/xml",
			body: "<ResetChatSession><ChatSessionId>427</ChatSessionId><Other>1</Other></ResetChatSession>",
			want: forwardedRequest{path: "/api/v1/Agents/Chat/ResetChatSession", body: `{"ChatSessionId":427}`,
				contentType: "application/json; charset=utf-8", contentLength: 21},
			wantBodyRecord: `{"ChatSessionId":427}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := provisioned(t, &Handler{Policy: testPolicy()})
			r := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			r.SetBasicAuth("bot", "pw")
			var got *forwardedRequest
			entity := entityFixture(t)
			w := httptest.NewRecorder()
			err := h.ServeHTTP(w, r, handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					t.Errorf("reading the forwarded body: %v", err)
				}
				got = &forwardedRequest{path: r.URL.EscapedPath(), rawQuery: r.URL.RawQuery, body: string(b),
					contentType: r.Header.Get("Content-Type"), contentLength: r.ContentLength}
				if cl := r.Header.Get("Content-Length"); len(b) > 0 && cl != "21" {
					t.Errorf("forwarded Content-Length header %q, want 21", cl)
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(entity)
				return nil
			}))
			if err != nil || w.Code != http.StatusOK {
				t.Fatalf("ServeHTTP = %v, status %d: %s", err, w.Code, w.Body)
			}
			if got == nil || *got != tc.want {
				t.Fatalf("forwarded %+v, want %+v", got, tc.want)
			}
			rec, _ := soleRecord(t, logs)
			rg, _ := rec["resetguard"].(map[string]any)
			fw, _ := rg["forwarded"].(map[string]any)
			if fw["path"] != tc.want.path || fw["body"] != nilIfEmpty(tc.wantBodyRecord) {
				t.Errorf("record resetguard.forwarded = %v, want path %q body %q", fw, tc.want.path, tc.wantBodyRecord)
			}
			asked := httptest.NewRequest(http.MethodPost, tc.path, nil).URL.EscapedPath()
			if u, _ := rec["url"].(map[string]any); u["path"] != asked {
				t.Errorf("record url.path = %v, want the client's %q", u["path"], asked)
			}
		})
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// TestBindingRefused: a request that names the session id where the
// backend could bind it besides the place the guard reads is refused
// with 400 and one record, and never forwarded.
func TestBindingRefused(t *testing.T) {
	const ctForm = "application/x-www-form-urlencoded"
	runHostileCases(t, []hostileCase{
		{name: "rest id in the query", path: "/api/v1/ChatSession/427/Reset?chatSessionId=2",
			wantStatus: 400, wantReason: refusal.SessionIDAmbiguous, wantAudit: true},
		{name: "rest id param in the query", path: "/api/v1/ChatSession/427/Reset?ID=2",
			wantStatus: 400, wantReason: refusal.SessionIDAmbiguous, wantAudit: true},
		{name: "rest form body", path: "/api/v1/ChatSession/427/Reset", header: map[string]string{"Content-Type": ctForm},
			body: strings.NewReader("chatSessionId=2"), wantStatus: 400, wantReason: refusal.RequestBodyRefused, wantAudit: true},
		{name: "rest chunked body", path: "/api/v1/ChatSession/427/Reset", length: -1,
			body: strings.NewReader("id=2"), wantStatus: 400, wantReason: refusal.RequestBodyRefused, wantAudit: true},
		{name: "agents bracketed form name", path: hostileAgentsPath, header: map[string]string{"Content-Type": ctForm},
			body: strings.NewReader("ChatSessionId=427&request[ChatSessionId]=2"), wantStatus: 400, wantReason: refusal.SessionIDAmbiguous, wantAudit: true},
		{name: "agents nested json id", path: hostileAgentsPath, header: hostileJSON,
			body: strings.NewReader(`{"ChatSessionId":427,"Request":{"ChatSessionId":2}}`), wantStatus: 400, wantReason: refusal.SessionIDAmbiguous, wantAudit: true},
		// Reaches Reset only when ';' is part of a segment (IIS); the
		// canonical path keeps the prefix "/a;b", which the guard's own
		// reading would read as "/a": not forwarded as decided, refused.
		{name: "canonical path reads differently", path: "/a;b/api/v1/ChatSession/427/Reset/..;/..",
			wantStatus: 400, wantReason: refusal.PathUnclassifiable, wantAudit: true},
		{name: "soap id in the query", path: hostileSOAPPath + "?chatsessionid=2", wantStatus: 400, wantReason: refusal.SessionIDAmbiguous, wantAudit: true,
			header: map[string]string{"SOAPAction": soaptest.ResetAction}, body: strings.NewReader(soaptest.Envelope("", soaptest.Reset("427")))},
	})
}
