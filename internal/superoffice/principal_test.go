package superoffice

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
	sotest "github.com/resetguard/caddy-resetguard/internal/superoffice/superofficetest"
)

func TestParseCarrier(t *testing.T) {
	cases := []struct {
		name string
		body string
		want *Carrier
	}{
		{name: "realistic carrier", body: sotest.Carrier, want: tCarrierWant},
		{
			name: "camel-cased keys, numeric user type, string id",
			body: `{"userType": 5, "associate": "SYSTEM", "associateId": "7", "roleName": "Integration",
				"userName": "sys", "databaseContextIdentifier": "cust99", "licenses": [], "functionRights": null}`,
			want: &Carrier{Associate: "SYSTEM", AssociateID: 7, UserType: "SystemAssociate",
				RoleName: "Integration", UserName: "sys", DatabaseContextIdentifier: "cust99", Licenses: []string{}},
		},
		{
			name: "numeric user types in enum order",
			body: `{"Associate": "A", "UserType": 3}`,
			want: &Carrier{Associate: "A", UserType: "ExternalAssociate"},
		},
		{
			name: "numeric user type as a string",
			body: `{"Associate": "A", "UserType": " 2 "}`,
			want: &Carrier{Associate: "A", UserType: "ResourceAssociate"},
		},
		{
			name: "user type out of range is Unknown",
			body: `{"Associate": "A", "UserType": 9}`,
			want: &Carrier{Associate: "A", UserType: "Unknown"},
		},
		{
			name: "user type name spelt canonically",
			body: `{"Associate": "A", "UserType": "anonymousassociate"}`,
			want: &Carrier{Associate: "A", UserType: "AnonymousAssociate"},
		},
		{
			name: "unknown user type name kept",
			body: `{"Associate": "A", "UserType": "FutureAssociate"}`,
			want: &Carrier{Associate: "A", UserType: "FutureAssociate"},
		},
		{
			name: "missing user type is Unknown",
			body: `{"Associate": "A", "AssociateId": 0}`,
			want: &Carrier{Associate: "A", UserType: "Unknown"},
		},
		{
			name: "whole number in exponent form",
			body: `{"AssociateId": 1e2}`,
			want: &Carrier{AssociateID: 100, UserType: "Unknown"},
		},
		{
			name: "licenses as objects and junk",
			body: `{"AssociateId": 9, "UserType": "ResourceAssociate", "Licenses": [
				{"Name": "CHAT", "Description": "Chat"}, {"License": "SALE"}, {"Description": "Marketing"},
				{"Other": 1}, 42, null, ["nested"], "PLAIN"],
				"FunctionRights": ["a", 1, {"x": 1}, null, "", "b"]}`,
			want: &Carrier{AssociateID: 9, UserType: "ResourceAssociate",
				Licenses: []string{"CHAT", "SALE", "Marketing", "PLAIN"}, FunctionRights: []string{"a", "b"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseCarrier([]byte(c.body))
			if err != nil {
				t.Fatalf("parseCarrier: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %#v\nwant %#v", got, c.want)
			}
		})
	}
}

func TestParseCarrierDropsPersonalData(t *testing.T) {
	p, err := parseCarrier([]byte(sotest.Carrier))
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("%#v", p)
	for _, s := range []string{"Jane Doe", "jane.doe@example.com"} {
		if strings.Contains(text, s) {
			t.Errorf("principal carries personal data %q: %s", s, text)
		}
	}
}

func TestParseCarrierMalformed(t *testing.T) {
	for _, body := range []string{
		``, `null`, `[]`, `"x"`, `{}`, `{"Associate": "A"`, `{"Associate": "A"} trailing`,
		`{"Error": true, "ErrorType": "SoException", "ErrorMessage": "boom"}`,
		`{"Associate": 5}`, `{"Associate": "A", "AssociateId": "five"}`, `{"Associate": "A", "AssociateId": 1.5}`,
		`{"Associate": "A", "AssociateId": 1e30}`,
		`<SoPrincipalCarrier><Associate>A</Associate></SoPrincipalCarrier>`,
	} {
		if p, err := parseCarrier([]byte(body)); err == nil {
			t.Errorf("parseCarrier(%q) = %#v, want error", body, p)
		}
	}
}

func TestCurrentPrincipal(t *testing.T) {
	b := sotest.NewBackend(t, sotest.Serve(http.StatusOK, sotest.Carrier, 0))
	c := newTestClient(t, b.URL, nil)
	p, err := c.CurrentPrincipal(context.Background(), "/Cust12345", sotest.CallerHeaders())
	if err != nil {
		t.Fatalf("CurrentPrincipal: %v", err)
	}
	if !reflect.DeepEqual(p, tCarrierWant) {
		t.Errorf("got  %#v\nwant %#v", p, tCarrierWant)
	}
}

// TestCurrentPrincipalFailures: a backend that refuses the credential is
// a 401 to the client; anything else that goes wrong is a 503.
func TestCurrentPrincipalFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + closed.Addr().String()
	closed.Close()

	cases := []struct {
		name       string
		handler    http.HandlerFunc // nil: backend down
		wantStatus int
		wantReason string
	}{
		{"401", sotest.Serve(401, `{"Error": true}`, 0), 401, refusal.PrincipalUnauthenticated},
		{"403", sotest.Serve(403, `{"Error": true}`, 0), 401, refusal.PrincipalUnauthenticated},
		{"500", sotest.Serve(500, `{"Error": true, "ErrorMessage": "boom"}`, 0), 503, refusal.PrincipalLookupFailed},
		{"502", sotest.Serve(502, `bad gateway`, 0), 503, refusal.PrincipalLookupFailed},
		{"204", sotest.Serve(204, ``, 0), 503, refusal.PrincipalLookupFailed},
		{"404", sotest.Serve(404, `{}`, 0), 503, refusal.PrincipalLookupFailed},
		{"malformed JSON", sotest.Serve(200, `{"Associate": "A",`, 0), 503, refusal.PrincipalLookupFailed},
		{"null body", sotest.Serve(200, `null`, 0), 503, refusal.PrincipalLookupFailed},
		{"HTML login page", sotest.Serve(200, `<html>login</html>`, 0), 503, refusal.PrincipalLookupFailed},
		{"backend down", nil, 503, refusal.PrincipalLookupFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			upstream := downURL
			if tc.handler != nil {
				upstream = sotest.NewBackend(t, tc.handler).URL
			}
			c := newTestClient(t, upstream, nil)
			p, err := c.CurrentPrincipal(context.Background(), "/Cust12345", sotest.CallerHeaders())
			rf, ok := refusal.As(err)
			if !ok {
				t.Fatalf("got %#v, %v; want a *refusal.Refusal", p, err)
			}
			if rf.Status != tc.wantStatus || rf.Reason() != tc.wantReason || rf.Message != refusal.MessageIdentity || rf.Err == nil {
				t.Errorf("got %d %s %q (%v), want %d %s with its cause", rf.Status, rf.Reason(), rf.Message, err, tc.wantStatus, tc.wantReason)
			}
			if rf.InvalidToken {
				t.Error("a lookup failure marks the token invalid")
			}
			sotest.CheckNoSecrets(t, err)
		})
	}
}
