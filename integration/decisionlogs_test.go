package integration_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// logCollector stands in for an OPA decision-log service: it keeps every
// raw (gzip'd) batch POSTed to /logs and the events decoded from them.
type logCollector struct {
	srv *httptest.Server

	mu      sync.Mutex
	raw     [][]byte // as received, compressed
	plain   [][]byte // decompressed
	events  []map[string]any
	badPath []string
	errs    []string
}

func newLogCollector() *logCollector {
	c := &logCollector{}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	return c
}

func (c *logCollector) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/logs" {
		c.badPath = append(c.badPath, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	c.raw = append(c.raw, body)
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		c.errs = append(c.errs, "gzip: "+err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		c.errs = append(c.errs, "gunzip: "+err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	c.plain = append(c.plain, plain)
	var batch []map[string]any
	if err := json.Unmarshal(plain, &batch); err != nil {
		c.errs = append(c.errs, "json: "+err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	c.events = append(c.events, batch...)
	w.WriteHeader(http.StatusOK)
}

func (c *logCollector) snapshot() (events []map[string]any, raw, plain [][]byte, errs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.events...), append([][]byte(nil), c.raw...),
		append([][]byte(nil), c.plain...), append(append([]string(nil), c.errs...), c.badPath...)
}

// TestDecisionLogs: allowed and denied resets through a gateway with
// decision logs on reach the loopback collector as OPA decision-log
// events, one per decision, with no credential value anywhere in them.
func TestDecisionLogs(t *testing.T) {
	g := startGateway(t)
	const (
		password = "dl-Pa55word-7f3e"
		xsrf     = "dl-xsrf-91c2a7"
		appToken = "dl-apptoken-55e1"
		cookie   = "dl-cookie-0b7d"
		bearer   = "dl-bearer-eyJhbGciOiJub25lIn0.e30.c2ln"
	)
	secrets := map[string]string{"password": password, "xsrf": xsrf, "apptoken": appToken, "cookie": cookie, "bearer": bearer}
	extra := map[string]string{"X-XSRF-Token": xsrf, "SO-AppToken": appToken, "Cookie": "ASP.NET_SessionId=" + cookie}

	want := 0
	statuses := map[int]int{}
	send := func(auth string) {
		resp, body := post(t, decisionLogsURL, restReset, auth, extra)
		statuses[resp.StatusCode]++
		// 200: allowed; 403 with the policy's reason: denied. Anything
		// else is refused before the policy and logs no decision.
		if resp.StatusCode == http.StatusOK ||
			(resp.StatusCode == http.StatusForbidden && strings.Contains(string(body), "mallory_refused")) {
			want++
		}
	}
	for range 3 {
		send(basic("bot", password))
	}
	for range 2 {
		send(basic("mallory", password))
	}
	send("Bearer " + bearer)
	if want < 5 {
		t.Fatalf("statuses %v: want 3 allowed and 2 denied", statuses)
	}

	var events []map[string]any
	var raw, plain [][]byte
	var errs []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		events, raw, plain, errs = g.dlogs.snapshot()
		if len(events) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A little longer: a surplus event would show here.
	time.Sleep(1500 * time.Millisecond)
	events, raw, plain, errs = g.dlogs.snapshot()
	if len(errs) > 0 {
		t.Fatalf("collector errors: %v", errs)
	}
	if len(events) != want {
		t.Fatalf("got %d decision events, want %d (statuses %v)", len(events), want, statuses)
	}
	allowed, denied := 0, 0
	ids := map[string]bool{}
	for i, ev := range events {
		for _, f := range []string{"decision_id", "path", "input", "result", "timestamp", "labels"} {
			if _, ok := ev[f]; !ok {
				t.Errorf("event %d lacks %q: %v", i, f, ev)
			}
		}
		id, _ := ev["decision_id"].(string)
		if id == "" || ids[id] {
			t.Errorf("event %d: decision_id %q empty or repeated", i, id)
		}
		ids[id] = true
		if p := ev["path"]; p != "resetguard/test/decision" {
			t.Errorf("event %d: path %v", i, p)
		}
		labels, _ := ev["labels"].(map[string]any)
		if labels["app"] != "resetguard" || labels["id"] == nil || labels["version"] == nil {
			t.Errorf("event %d: labels %v", i, labels)
		}
		if _, err := time.Parse(time.RFC3339Nano, ev["timestamp"].(string)); err != nil {
			t.Errorf("event %d: timestamp: %v", i, err)
		}
		if _, ok := ev["input"].(map[string]any); !ok {
			t.Errorf("event %d: input %v", i, ev["input"])
		}
		res, _ := ev["result"].(map[string]any)
		switch res["allow"] {
		case true:
			allowed++
		case false:
			denied++
		default:
			t.Errorf("event %d: result %v", i, ev["result"])
		}
	}
	if allowed != statuses[http.StatusOK] || allowed+denied != want {
		t.Errorf("allowed %d denied %d, statuses %v", allowed, denied, statuses)
	}
	for _, blobs := range [][][]byte{raw, plain} {
		for _, b := range blobs {
			for name, s := range secrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("the %s value appears in a decision-log batch", name)
				}
			}
			if bytes.Contains(b, []byte(basic("bot", password))[6:]) || bytes.Contains(b, []byte(basic("mallory", password))[6:]) {
				t.Error("a Basic credential appears in a decision-log batch")
			}
		}
	}
}
