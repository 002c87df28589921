package credential

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/resetguard/caddy-resetguard/internal/superoffice"
)

// so prefixes SuperOffice's identity claims.
const so = "http://schemes.superoffice.net/identity/"

// claimsCases are verified claims and the principal they map to.
var claimsCases = []struct {
	name                         string
	claims                       map[string]any
	subject, associateID, tenant string
	want                         Principal
}{
	{
		name: "SuperOffice string claims",
		claims: map[string]any{"sub": "jane@example.com", so + "associateid": "5", so + "ctx": "Cust12345",
			so + "is_administrator": "False"},
		associateID: so + "associateid", tenant: so + "ctx",
		want: Principal{Source: "jwt", Subject: "jane@example.com", AssociateID: 5, Tenant: "Cust12345"},
	},
	{
		name:    "numeric claims as decoded from JSON",
		claims:  map[string]any{"uid": "bot-1", "aid": float64(42), "tid": "cust7"},
		subject: "uid", associateID: "aid", tenant: "tid",
		want: Principal{Source: "jwt", Subject: "bot-1", AssociateID: 42, Tenant: "Cust7"},
	},
	{
		name:   "json.Number and integer claims",
		claims: map[string]any{"sub": json.Number("1001"), "aid": json.Number("43"), "n": int64(8)},
		// json.Number subject is formatted as sent.
		associateID: "aid",
		want:        Principal{Source: "jwt", Subject: "1001", AssociateID: 43},
	},
	{
		name:        "Go int claim",
		claims:      map[string]any{"sub": "x", "aid": 44},
		associateID: "aid",
		want:        Principal{Source: "jwt", Subject: "x", AssociateID: 44},
	},
	{
		name:        "unparseable associate id is 0",
		claims:      map[string]any{"sub": "x", "aid": "five"},
		associateID: "aid",
		want:        Principal{Source: "jwt", Subject: "x"},
	},
	{
		name:        "fractional associate id is 0",
		claims:      map[string]any{"sub": "x", "aid": 5.5},
		associateID: "aid",
		want:        Principal{Source: "jwt", Subject: "x"},
	},
	{
		name:        "out of range associate id is 0",
		claims:      map[string]any{"sub": "x", "aid": 1e30},
		associateID: "aid",
		want:        Principal{Source: "jwt", Subject: "x"},
	},
	{
		name:        "boolean associate id is 0",
		claims:      map[string]any{"sub": "x", "aid": true},
		associateID: "aid",
		want:        Principal{Source: "jwt", Subject: "x"},
	},
	{
		name:        "missing claims",
		claims:      map[string]any{"iss": "https://sod.superoffice.com"},
		associateID: so + "associateid", tenant: so + "ctx",
		want: Principal{Source: "jwt"},
	},
	{
		name:        "empty claim names map nothing",
		claims:      map[string]any{"sub": "s", "": "5"},
		associateID: "", tenant: "",
		want: Principal{Source: "jwt", Subject: "s"},
	},
}

func TestPrincipalFromClaims(t *testing.T) {
	for _, c := range claimsCases {
		t.Run(c.name, func(t *testing.T) {
			got := PrincipalFromClaims(c.claims, c.subject, c.associateID, c.tenant)
			if reflect.ValueOf(got.Claims).Pointer() != reflect.ValueOf(c.claims).Pointer() {
				t.Error("Claims is not the verified claims map")
			}
			got.Claims = nil
			if !reflect.DeepEqual(*got, c.want) {
				t.Errorf("got  %#v\nwant %#v", *got, c.want)
			}
		})
	}
	if p := PrincipalFromClaims(nil, "", "", ""); p.Source != "jwt" || p.Claims != nil {
		t.Errorf("nil claims: %#v", p)
	}
}

// TestPrincipalFromCarrier: a backend principal names the same facts as
// the carrier, the tenant spelt as for JWT principals.
func TestPrincipalFromCarrier(t *testing.T) {
	cases := []struct {
		name string
		in   superoffice.Carrier
		want Principal
	}{
		{
			name: "every fact",
			in: superoffice.Carrier{Associate: "JANE", AssociateID: 5, UserType: "InternalAssociate", RoleName: "Chat agent",
				UserName: "jane", DatabaseContextIdentifier: "Cust12345", Licenses: []string{"USER"}, FunctionRights: []string{"chat-admin"}},
			want: Principal{Source: "backend", Subject: "JANE", AssociateID: 5, UserType: "InternalAssociate", RoleName: "Chat agent",
				UserName: "jane", Tenant: "Cust12345", Licenses: []string{"USER"}, FunctionRights: []string{"chat-admin"}},
		},
		{
			name: "tenant spelt canonically",
			in:   superoffice.Carrier{Associate: "SYSTEM", UserType: "SystemAssociate", DatabaseContextIdentifier: "cust99", Licenses: []string{}},
			want: Principal{Source: "backend", Subject: "SYSTEM", UserType: "SystemAssociate", Tenant: "Cust99", Licenses: []string{}},
		},
		{
			name: "onsite tenant kept",
			in:   superoffice.Carrier{AssociateID: 9, UserType: "Unknown", DatabaseContextIdentifier: "SuperOffice"},
			want: Principal{Source: "backend", AssociateID: 9, UserType: "Unknown", Tenant: "SuperOffice"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := principalFromCarrier(&c.in); !reflect.DeepEqual(*got, c.want) {
				t.Errorf("got  %#v\nwant %#v", *got, c.want)
			}
		})
	}
}
