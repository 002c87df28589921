package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/resetguard/caddy-resetguard/internal/superoffice"
)

func hmacHex(key, v string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(v))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

func TestNewCustomerRedactor(t *testing.T) {
	tests := []struct {
		name      string
		fields    map[string]string
		key       string
		wantErr   string // substring; "" for success
		wantNames []string
	}{
		{name: "none", fields: nil, wantNames: nil},
		{name: "clear without key", fields: map[string]string{"CustomerHost": "clear"}, wantNames: []string{"CustomerHost"}},
		{name: "names matched case-insensitively", fields: map[string]string{"customeremail": "hash", "CUSTOMERPHONE": "clear"},
			key: "k", wantNames: []string{"CustomerEmail", "CustomerPhone"}},
		{name: "hash needs a key", fields: map[string]string{"CustomerName": "hash"}, wantErr: "customer_key"},
		{name: "unknown field", fields: map[string]string{"SessionKey": "clear"}, wantErr: "not a customer field"},
		{name: "unknown treatment", fields: map[string]string{"CustomerName": "encrypt"}, key: "k", wantErr: "want hash or clear"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCustomerRedactor(tt.fields, []byte(tt.key))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			names := slices.Clone(c.Names())
			slices.Sort(names)
			if !slices.Equal(names, tt.wantNames) {
				t.Errorf("Names() = %q, want %q", names, tt.wantNames)
			}
		})
	}
	if names := (*CustomerRedactor)(nil).Names(); names != nil {
		t.Errorf("a nil redactor asks for %q", names)
	}
}

// TestCustomerRedactorFields: the chosen fields of one decoded entity,
// hashed or in clear under their record names; nothing else.
func TestCustomerRedactorFields(t *testing.T) {
	const key = "customer-key"
	c, err := NewCustomerRedactor(map[string]string{"CustomerEmail": "hash", "CustomerHost": "clear", "CustomerPhone": "hash"}, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		entity  *superoffice.Entity
		want    map[string]string
		wantErr bool
	}{
		{name: "chosen fields", entity: &superoffice.Entity{Customer: map[string]string{
			"CustomerEmail": "a@example.com", "CustomerHost": "host-1", "CustomerName": "not chosen"}},
			want: map[string]string{"customer_email": hmacHex(key, "a@example.com"), "customer_host": "host-1"}},
		{name: "empty value hashed", entity: &superoffice.Entity{Customer: map[string]string{"CustomerPhone": ""}},
			want: map[string]string{"customer_phone": hmacHex(key, "")}},
		{name: "none present", entity: &superoffice.Entity{}, want: map[string]string{}},
		{name: "undecodable field", entity: &superoffice.Entity{Customer: map[string]string{"CustomerHost": "h"},
			CustomerErr: errors.New("customer field CustomerPhone is not a string")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Fields(tt.entity)
			if tt.wantErr {
				if err == nil || got != nil {
					t.Fatalf("got %v, %v; want no fields and an error", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestCustomerFieldsFromDecodedFixture: one decoding of the fixture gives
// the redactor what it needs, in both formats.
func TestCustomerFieldsFromDecodedFixture(t *testing.T) {
	c, err := NewCustomerRedactor(map[string]string{"CustomerName": "clear", "CustomerEmail": "hash"}, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"customer_name": "Nitzsche Group", "customer_email": hmacHex("k", "retta.reichel@hegmann.name")}
	for file, ct := range map[string]string{"reset.json": "application/json", "reset.xml": "application/xml"} {
		body, err := os.ReadFile("../testdata/entities/" + file)
		if err != nil {
			t.Fatal(err)
		}
		e, err := superoffice.DecodeEntity(body, ct, "", superoffice.DecodeOptions{Customer: c.Names()})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Fields(e)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, %v; want %v", file, got, err, want)
		}
	}
}

// TestCustomerFieldsCoverTheEntity: every customer field of the entity
// has a record name, and nothing else does.
func TestCustomerFieldsCoverTheEntity(t *testing.T) {
	got := slices.Sorted(maps.Keys(CustomerFields))
	want := slices.Sorted(slices.Values(superoffice.CustomerFields[:]))
	if !slices.Equal(got, want) {
		t.Errorf("record names for %q, entity fields %q", got, want)
	}
}
