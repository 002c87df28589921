package session

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFetch(t *testing.T) {
	entity, err := os.ReadFile("../testdata/entities/reset.json")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var gotAuth, gotCookie, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/427") {
			mu.Lock()
			gotAuth, gotCookie, gotPath = r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.URL.Path
			mu.Unlock()
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/427"):
			// Keys in another case must be redacted too.
			_, _ = w.Write([]byte(strings.Replace(string(entity), `"SessionKey"`, `"sessionkey"`, 1)))
		case strings.HasSuffix(r.URL.Path, "/5"):
			_, _ = w.Write(entity) // id 427, not 5
		case strings.HasSuffix(r.URL.Path, "/6"):
			_, _ = w.Write([]byte("null"))
		case strings.HasSuffix(r.URL.Path, "/7"):
			w.WriteHeader(http.StatusForbidden)
		case strings.HasSuffix(r.URL.Path, "/8"):
			time.Sleep(300 * time.Millisecond)
		}
	}))
	defer srv.Close()
	l := &Lookup{Upstream: srv.URL, Timeout: 100 * time.Millisecond, Client: srv.Client()}
	from := http.Header{"Authorization": {"SoTicket 7T:x"}, "Cookie": {"a=b"}, "X-Other": {"no"}}

	e, err := l.Fetch(context.Background(), "/superoffice", 427, from)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if gotAuth != "SoTicket 7T:x" || gotCookie != "a=b" || gotPath != "/superoffice/api/v1/ChatSession/427" {
		t.Errorf("lookup sent auth %q cookie %q to %q", gotAuth, gotCookie, gotPath)
	}
	for k := range e {
		for _, r := range Redacted {
			if strings.EqualFold(k, r) {
				t.Errorf("redacted field %s reached the policy", k)
			}
		}
	}
	if e["Status"] != "InQueue" || e["TopicId"] == nil {
		t.Errorf("entity lost fields: %v", e)
	}

	for _, tc := range []struct {
		id         int32
		wantStatus int
		wantReason string
	}{
		{5, 503, "session_lookup_failed"},
		{6, 503, "session_lookup_failed"},
		{7, 403, "session_lookup_refused"},
		{8, 503, "session_lookup_failed"},
		{9, 503, "session_lookup_failed"}, // empty 200 body
	} {
		_, err := l.Fetch(context.Background(), "", tc.id, from)
		var le *Error
		if !errors.As(err, &le) || le.Status != tc.wantStatus || le.Reason != tc.wantReason {
			t.Errorf("id %d: err %v, want %d %s", tc.id, err, tc.wantStatus, tc.wantReason)
		}
		if err != nil && strings.Contains(err.Error(), "7T:x") {
			t.Errorf("error leaks the credential: %v", err)
		}
	}
}
