package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEvalHandoff(t *testing.T) {
	e := handoffEngine(t)
	tests := []struct {
		name string
		mod  func(*Input)
		want Decision
	}{
		{"listed onsite bot", func(*Input) {}, Decision{
			Allow:   true,
			Reasons: []string{"listed_bot"},
			Headers: http.Header{"X-Resetguard-Bot": {"onsite-chatbot"}},
		}},
		{"listed tenant bot, tenant case-insensitive", func(in *Input) {
			in.Tenant = "cust12345"
			in.Credential.Username = "cust12345-bot"
		}, Decision{
			Allow:   true,
			Reasons: []string{"listed_bot"},
			Headers: http.Header{"X-Resetguard-Bot": {"cust12345-bot"}},
		}},
		{"unlisted user", func(in *Input) { in.Credential.Username = "agent7" }, Decision{
			Reasons: []string{"caller_not_a_listed_bot"},
		}},
		{"bot outside its tenant", func(in *Input) { in.Tenant = "Cust99999" }, Decision{
			Reasons: []string{"caller_not_a_listed_bot"},
		}},
		{"credential tenant mismatch", func(in *Input) { in.Credential.Tenant = "Cust1" }, Decision{
			Reasons: []string{"tenant_mismatch"},
		}},
		{"protected session", func(in *Input) { in.SessionID = 1 }, Decision{
			Reasons: []string{"session_protected"},
		}},
		{"all reasons, sorted", func(in *Input) {
			in.SessionID = 1
			in.Credential.Tenant = "Cust1"
			in.Action = "chat_session.delete"
		}, Decision{
			Reasons: []string{"session_protected", "tenant_mismatch", "wrong_action"},
		}},
		{"bearer caller without a known principal", func(in *Input) {
			in.Tenant = "Cust12345"
			in.Credential = Credential{Scheme: "bearer", Kind: "superoffice_token", Fingerprint: "fp", Tenant: "Cust12345"}
		}, Decision{
			Reasons: []string{"caller_not_a_listed_bot"},
		}},
		{"no session id", func(in *Input) { in.SessionID = 0 }, Decision{
			Allow:   true,
			Reasons: []string{"listed_bot"},
			Headers: http.Header{"X-Resetguard-Bot": {"onsite-chatbot"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := botInput()
			tt.mod(in)
			got, err := e.Eval(context.Background(), in.Value())
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Eval\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestEvalCaddyTestPolicy(t *testing.T) {
	e := newEngine(t, Config{Paths: []string{caddyPolicy}, Query: caddyQuery})
	in := func(id int32, user string) *Input {
		i := botInput()
		i.SessionID = id
		i.Credential.Username = user
		return i
	}
	ctx := context.Background()

	// Session 13 makes two rules produce conflicting values: an evaluation
	// error, which the caller must treat as a deny.
	d, err := e.Eval(ctx, in(13, "alice").Value())
	if err == nil {
		t.Fatalf("session 13: Eval = %+v, nil; want a conflict error", d)
	}
	if d.Allow {
		t.Errorf("session 13: an error came with an allow: %+v", d)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("session 13: a conflict reported as a timeout: %v", err)
	}
	if !strings.Contains(err.Error(), caddyQuery) {
		t.Errorf("session 13: error %q does not name the query", err)
	}

	tests := []struct {
		name string
		in   *Input
		want Decision
	}{
		{"ordinary caller", in(427, "alice"), Decision{Allow: true, Reasons: []string{"ok"}, Headers: http.Header{"X-Resetguard-Decision": {"allow"}}}},
		{"mallory", in(427, "mallory"), Decision{Reasons: []string{"mallory_refused"}, Status: 403, Headers: http.Header{"X-Denied-By": {"policy"}}}},
		{"locked session", in(666, "alice"), Decision{Reasons: []string{"session_locked"}, Status: 423}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Eval(ctx, tt.in.Value())
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Eval\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// slowPolicy counts input.n × input.n pairs, which takes seconds for
// n = 10000, and answers at once when input.fast is true.
const slowPolicy = `package slow

default decision := false

decision if input.fast

decision if {
	not input.fast
	n := count([1 | some i in numbers.range(1, input.n); some j in numbers.range(1, input.n)])
	n > 0
}
`

func TestEvalTimeout(t *testing.T) {
	dir := policyDir(t, map[string]string{"slow.rego": slowPolicy})
	e := newEngine(t, Config{Paths: []string{dir}, Query: "data.slow.decision", Timeout: 10 * time.Millisecond})

	start := time.Now()
	d, err := e.Eval(context.Background(), mustValue(t, map[string]any{"n": 10000, "fast": false}))
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("slow policy: Eval = %+v, nil after %v; want a timeout", d, elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow policy: error %v does not wrap context.DeadlineExceeded", err)
	}
	if d.Allow {
		t.Errorf("slow policy: a timeout came with an allow: %+v", d)
	}
	if elapsed > time.Second {
		t.Errorf("slow policy: Eval took %v with a 10ms timeout", elapsed)
	}

	// The engine is still usable after a timeout.
	d, err = e.Eval(context.Background(), mustValue(t, map[string]any{"fast": true}))
	if err != nil || !d.Allow {
		t.Errorf("fast input after a timeout: %+v, %v; want an allow", d, err)
	}
}

func TestEvalCancelledContext(t *testing.T) {
	dir := policyDir(t, map[string]string{"slow.rego": slowPolicy})
	e := newEngine(t, Config{Paths: []string{dir}, Query: "data.slow.decision", Timeout: time.Minute})

	// A request cancelled while the policy runs: the evaluation stops and
	// the error says why. (A context cancelled before Eval is left out: see
	// the report; a fast policy may still return its decision.)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	d, err := e.Eval(ctx, mustValue(t, map[string]any{"n": 10000, "fast": false}))
	if d.Allow {
		t.Errorf("cancelled mid-evaluation: an allow: %+v", d)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled mid-evaluation: error %v does not wrap context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("cancelled mid-evaluation: Eval took %v", elapsed)
	}
}

func TestEvalInvalidResults(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": `package p

s := "allow"

n := 1

obj := {"allow": "yes"}

list := [true, true]

yes := true

no := false
`})
	invalid := Decision{Reasons: []string{ReasonInvalid}}
	tests := []struct {
		query string
		want  Decision
	}{
		{"data.p.undefined_rule", invalid},
		{"data.no_such_package.decision", invalid},
		{"data.p.s", invalid},
		{"data.p.n", invalid},
		{"data.p.obj", invalid},
		{"data.p.list", invalid},
		{"data.p", invalid}, // the whole package: an object with unknown keys
		{"data.p.yes", Decision{Allow: true}},
		{"data.p.no", Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			e := newEngine(t, Config{Paths: []string{dir}, Query: tt.query})
			got, err := e.Eval(context.Background(), botInput().Value())
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Eval\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestEvalConcurrent(t *testing.T) {
	// A generous timeout: this test is about the decisions, and 50
	// goroutines under -race on a small machine can starve one evaluation
	// past the 100ms default (which then, correctly, fails closed).
	e := newEngine(t, Config{Paths: []string{handoffDir}, Query: handoffQuery, Timeout: 30 * time.Second})
	inputs := []*Input{botInput()}
	for _, mod := range []func(*Input){
		func(in *Input) { in.Credential.Username = "agent7" },
		func(in *Input) { in.Credential.Tenant = "Cust1" },
		func(in *Input) { in.SessionID = 1 },
		func(in *Input) { in.Tenant = "Cust12345"; in.Credential.Username = "cust12345-bot" },
	} {
		in := botInput()
		mod(in)
		inputs = append(inputs, in)
	}
	want := make([]Decision, len(inputs))
	for i, in := range inputs {
		d, err := e.Eval(context.Background(), in.Value())
		if err != nil {
			t.Fatal(err)
		}
		want[i] = d
	}

	const goroutines, rounds = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				i := (g + r) % len(inputs)
				d, err := e.Eval(context.Background(), inputs[i].Value())
				if err != nil {
					errs <- fmt.Errorf("goroutine %d, input %d: %v", g, i, err)
					continue
				}
				if !reflect.DeepEqual(d, want[i]) {
					errs <- fmt.Errorf("goroutine %d, input %d: got %#v, want %#v", g, i, d, want[i])
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 10 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Errorf("%d of %d concurrent evaluations differed", n, goroutines*rounds)
	}
}

func BenchmarkEvalHandoff(b *testing.B) {
	// A generous timeout, so that a descheduled iteration on a busy
	// machine does not end the benchmark; the policy itself takes
	// microseconds.
	e := newEngine(b, Config{Paths: []string{handoffDir}, Query: handoffQuery, Timeout: 30 * time.Second})
	input := botInput().Value()
	ctx := context.Background()
	d, err := e.Eval(ctx, input)
	if err != nil || !d.Allow {
		b.Fatalf("Eval = %+v, %v; want an allow", d, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Eval(ctx, input); err != nil {
			b.Fatal(err)
		}
	}
}
