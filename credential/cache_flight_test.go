package credential

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
	sotest "github.com/resetguard/caddy-resetguard/internal/superoffice/superofficetest"
)

func TestPrincipalLookupCoalesces(t *testing.T) {
	b := sotest.NewBackend(t, sotest.Serve(http.StatusOK, sotest.Carrier, 100*time.Millisecond))
	l := newPL(t, b.URL, 0, nil)
	const n = 50
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]*Principal, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = l.Lookup(context.Background(), "same", "/Cust12345", sotest.CallerHeaders())
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("lookup %d: %v", i, errs[i])
		} else if !reflect.DeepEqual(results[i], plCarrierPrincipal) {
			t.Errorf("lookup %d: %#v", i, results[i])
		}
	}
	if c := b.Calls(); c != 1 {
		t.Errorf("backend calls for %d concurrent lookups = %d, want 1", n, c)
	}
	if _, _, c := l.Stats(); c != 1 {
		t.Errorf("Stats backend calls = %d, want 1", c)
	}
}

// TestPrincipalLookupWaiterCancelled cancels the client whose lookup
// started the shared call: it returns at once, and the call still
// completes for the other waiter and fills the cache.
func TestPrincipalLookupWaiterCancelled(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var backendCancelled atomic.Bool
	b := sotest.NewBackend(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			backendCancelled.Store(true)
			return
		}
		_, _ = w.Write([]byte(sotest.Carrier))
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	l := newPL(t, b.URL, 5*time.Second, nil)

	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	r1 := lookupAsync(ctx1, l)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("backend never called")
	}

	r2 := lookupAsync(context.Background(), l)
	// The second lookup joins the flight, which cannot end before release.
	waitForMisses(t, l, 2)

	cancelled := time.Now()
	cancel1()
	var res1 lookupResult
	select {
	case res1 = <-r1:
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled waiter did not return")
	}
	if d := res1.at.Sub(cancelled); d > 100*time.Millisecond {
		t.Errorf("cancelled waiter returned after %v", d)
	}
	if rf, ok := refusal.As(res1.err); !ok || rf.Reason() != refusal.PrincipalLookupFailed || !errors.Is(res1.err, context.Canceled) {
		t.Errorf("cancelled waiter error = %v", res1.err)
	}
	select {
	case res := <-r2:
		t.Fatalf("second waiter returned before the backend answered: %+v", res)
	default:
	}

	close(release)
	res2 := <-r2
	if res2.err != nil || !reflect.DeepEqual(res2.p, plCarrierPrincipal) {
		t.Fatalf("second waiter: %#v, %v", res2.p, res2.err)
	}
	if backendCancelled.Load() {
		t.Error("shared backend call was cancelled with the first client")
	}
	if _, err := l.Lookup(context.Background(), "k", "", sotest.CallerHeaders()); err != nil {
		t.Fatal(err)
	}
	if h, _, c := l.Stats(); h != 1 || c != 1 {
		t.Errorf("after the shared call: %d hits, %d backend calls; want 1, 1", h, c)
	}
}

// TestPrincipalLookupWaitersOwnTheirRefusal: waiters of one failed shared
// call each get their own refusal, so that one request adding to it (a
// challenge header) cannot race with another.
func TestPrincipalLookupWaitersOwnTheirRefusal(t *testing.T) {
	release := make(chan struct{})
	b := sotest.NewBackend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusUnauthorized)
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	l := newPL(t, b.URL, 5*time.Second, nil)
	const n = 8
	refusals := make([]*refusal.Refusal, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := l.Lookup(context.Background(), "same", "", sotest.CallerHeaders())
			refusals[i], _ = refusal.As(err)
		})
	}
	// Every waiter is on the flight, which cannot end before release.
	waitForMisses(t, l, n)
	close(release)
	wg.Wait()
	if c := b.Calls(); c != 1 {
		t.Fatalf("backend calls = %d, want 1 shared call", c)
	}
	seen := map[*refusal.Refusal]bool{}
	for i, rf := range refusals {
		if rf == nil || rf.Status != http.StatusUnauthorized || rf.Reason() != refusal.PrincipalUnauthenticated {
			t.Fatalf("waiter %d: refusal %v, want 401 principal_unauthenticated", i, rf)
		}
		if seen[rf] {
			t.Errorf("waiter %d shares its refusal with another", i)
		}
		seen[rf] = true
		rf.WithHeader("WWW-Authenticate", "Basic")
	}
}

// lookupResult is one Lookup's answer and when it came.
type lookupResult struct {
	p   *Principal
	err error
	at  time.Time
}

// lookupAsync runs Lookup for key "k" and delivers its answer.
func lookupAsync(ctx context.Context, l *PrincipalLookup) <-chan lookupResult {
	ch := make(chan lookupResult, 1)
	go func() {
		p, err := l.Lookup(ctx, "k", "", sotest.CallerHeaders())
		ch <- lookupResult{p, err, time.Now()}
	}()
	return ch
}

// waitForMisses waits until n lookups have missed the cache, then a
// little longer, so that each has joined the shared call.
func waitForMisses(t *testing.T, l *PrincipalLookup, n int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, m, _ := l.Stats(); m == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lookups never started", n)
		}
	}
	time.Sleep(20 * time.Millisecond)
}
