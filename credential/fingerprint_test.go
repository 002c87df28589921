package credential

import (
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
)

var (
	fpBasic  = Credential{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass}
	fpTicket = Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: ticket}
)

func TestFingerprintFormat(t *testing.T) {
	fa := NewFingerprinter([]byte("fingerprint-key-A"))
	for _, c := range []Credential{fpBasic, fpTicket, {}} {
		fp := fa.Fingerprint(c)
		if len(fp) != 32 {
			t.Errorf("Fingerprint(%s) = %q: %d characters, want 32", c.Scheme, fp, len(fp))
		}
		if _, err := hex.DecodeString(fp); err != nil || fp != strings.ToLower(fp) {
			t.Errorf("Fingerprint(%s) = %q is not lower-case hex", c.Scheme, fp)
		}
		if c.secret != "" && strings.Contains(fp, c.secret) {
			t.Errorf("Fingerprint(%s) = %q contains the secret", c.Scheme, fp)
		}
	}
}

// TestFingerprintStable: the same key and credential give the same
// fingerprint, across instances too, and only scheme and secret count.
func TestFingerprintStable(t *testing.T) {
	keyA := []byte("fingerprint-key-A")
	fa := NewFingerprinter(keyA)
	same := fpBasic
	same.Username, same.Kind, same.Tenant = "someone-else", KindTicket, "Cust1"
	for _, tc := range []struct {
		name string
		f    *Fingerprinter
		c    Credential
	}{
		{"same fingerprinter", fa, fpBasic},
		{"same key, another fingerprinter", NewFingerprinter(keyA), fpBasic},
		{"other parsed fields", fa, same},
	} {
		if x, y := fa.Fingerprint(fpBasic), tc.f.Fingerprint(tc.c); x != y {
			t.Errorf("%s: %q != %q", tc.name, x, y)
		}
	}
}

// TestFingerprintDistinct: keys, schemes and secrets each change the
// fingerprint, and the scheme/secret boundary cannot shift.
func TestFingerprintDistinct(t *testing.T) {
	fa, fb := NewFingerprinter([]byte("fingerprint-key-A")), NewFingerprinter([]byte("fingerprint-key-B"))
	if x, y := fa.Fingerprint(fpBasic), fb.Fingerprint(fpBasic); x == y {
		t.Errorf("keys A and B give the same fingerprint %q", x)
	}
	const shared = "7T:c2hhcmVkLXNlY3JldA=="
	bySchemes := map[string]Scheme{}
	for _, s := range AllSchemes {
		fp := fa.Fingerprint(Credential{Scheme: s, secret: shared})
		if prev, ok := bySchemes[fp]; ok {
			t.Errorf("schemes %s and %s give the same fingerprint %q for one secret", prev, s, fp)
		}
		bySchemes[fp] = s
	}
	bySecret := map[string]string{}
	for _, sec := range []string{"", "a", "b", ticket, ticket + "x", basicValue, xsrfToken, otherXSRF, soToken} {
		fp := fa.Fingerprint(Credential{Scheme: SchemeBearer, secret: sec})
		if prev, ok := bySecret[fp]; ok {
			t.Errorf("secrets %q and %q give the same fingerprint %q", prev, sec, fp)
		}
		bySecret[fp] = sec
	}
	// The separator keeps scheme and secret apart: "basic"+"x..." is not
	// "basicx"+"...".
	if x, y := fa.Fingerprint(Credential{Scheme: "basic", secret: "xsrf"}), fa.Fingerprint(Credential{Scheme: "basicxsrf"}); x == y {
		t.Errorf("scheme/secret boundary is ambiguous: %q", x)
	}
}

// TestFingerprintCopiesKey: changing the caller's key slice later
// changes nothing.
func TestFingerprintCopiesKey(t *testing.T) {
	key := []byte("mutable-key")
	fm := NewFingerprinter(key)
	before := fm.Fingerprint(fpTicket)
	key[0] = 'X'
	if after := fm.Fingerprint(fpTicket); after != before {
		t.Errorf("fingerprint changed after the caller's key slice changed: %q -> %q", before, after)
	}
}

// TestFingerprintKey: cache keys are keyed, full-length hex, and the
// length prefix keeps part boundaries from shifting.
func TestFingerprintKey(t *testing.T) {
	fa, fb := NewFingerprinter([]byte("k1")), NewFingerprinter([]byte("k2"))
	base := fa.Key("ab", "c")
	if len(base) != 64 {
		t.Errorf("Key = %q: %d characters, want 64", base, len(base))
	}
	for _, tc := range []struct {
		name string
		got  string
		same bool
	}{
		{"same parts", fa.Key("ab", "c"), true},
		{"shifted boundary", fa.Key("a", "bc"), false},
		{"joined parts", fa.Key("abc"), false},
		{"extra empty part", fa.Key("ab", "c", ""), false},
		{"other key", fb.Key("ab", "c"), false},
	} {
		if (tc.got == base) != tc.same {
			t.Errorf("%s: Key = %q, base %q; want equal %v", tc.name, tc.got, base, tc.same)
		}
	}
}

func TestFingerprintEmptyKey(t *testing.T) {
	c := Credential{Scheme: SchemeSoTicket, Kind: KindTicket, secret: ticket}
	f1, f2, f3 := NewFingerprinter(nil), NewFingerprinter([]byte{}), NewFingerprinter(nil)
	x := f1.Fingerprint(c)
	if y, z := f2.Fingerprint(c), f3.Fingerprint(c); x != y || x != z {
		t.Errorf("empty-key fingerprinters disagree: %q %q %q", x, y, z)
	}
	if len(x) != 32 {
		t.Errorf("fingerprint %q: %d characters, want 32", x, len(x))
	}
	// The per-process key is random, not the empty key.
	if empty := NewFingerprinter(processKey()).Fingerprint(c); empty != x {
		t.Errorf("empty key does not use the process key: %q != %q", x, empty)
	}
	if len(processKey()) != 32 {
		t.Errorf("process key is %d bytes, want 32", len(processKey()))
	}
	if fmt.Sprint(processKey()) == fmt.Sprint(make([]byte, 32)) {
		t.Error("process key is all zeros")
	}
}

func TestFingerprintConcurrent(t *testing.T) {
	f := NewFingerprinter([]byte("concurrent-key"))
	creds := []Credential{
		{Scheme: SchemeBasic, Kind: KindBasic, Username: basicUser, secret: basicUser + ":" + basicPass},
		{Scheme: SchemeSoTicket, Kind: KindTicket, secret: ticket},
		{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: "Cust12345", secret: soToken},
		{Scheme: SchemeXSRF, Kind: KindXSRF, secret: xsrfToken},
	}
	want := make([]string, len(creds))
	for i, c := range creds {
		want[i] = f.Fingerprint(c)
	}
	const goroutines, rounds = 32, 200
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for n := range rounds {
				i := (g + n) % len(creds)
				if got := f.Fingerprint(creds[i]); got != want[i] {
					errs <- fmt.Sprintf("goroutine %d: Fingerprint(%s) = %q, want %q", g, creds[i].Scheme, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestBasicFingerprintIgnoresBase64Spelling: non-canonical base64 of the
// same user:pass is the same credential.
func TestBasicFingerprintIgnoresBase64Spelling(t *testing.T) {
	fp := NewFingerprinter([]byte("k"))
	var got []string
	for _, v := range []string{"YWxpY2U6cGFzcw==", "YWxpY2U6cGFzcx=="} {
		c, err := Parse(newRequest([]hdr{{"Authorization", "Basic " + v}}), Options{Schemes: AllSchemes}, "")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fp.Fingerprint(c))
	}
	if got[0] != got[1] {
		t.Fatalf("fingerprints differ: %v", got)
	}
}

func BenchmarkFingerprint(b *testing.B) {
	f := NewFingerprinter([]byte("bench-key"))
	c := Credential{Scheme: SchemeBearer, Kind: KindSuperOfficeToken, Tenant: "Cust12345", secret: soToken}
	b.ReportAllocs()
	for b.Loop() {
		_ = f.Fingerprint(c)
	}
}
