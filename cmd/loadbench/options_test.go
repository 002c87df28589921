package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/resetguard/caddy-resetguard/credential"
)

func TestParseWorkloads(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: strings.Join(workloadNames, ","), want: workloadNames},
		{in: "allowed_reset_jwt", want: []string{allowedResetJWT}},
		{in: " pass_through , allowed_reset ", want: []string{passThrough, allowedReset}},
		{in: "allowed_reset,bogus", wantErr: `unknown workload "bogus"`},
		{in: "denied_reset,denied_reset", wantErr: "named twice"},
		{in: ",", wantErr: "no workload"},
	} {
		got, err := parseWorkloads(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseWorkloads(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseWorkloads(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestDefaultProfiled(t *testing.T) {
	for _, tc := range []struct {
		selected []string
		want     string
	}{
		{workloadNames, allowedResetJWT},
		{[]string{deniedReset, allowedReset}, allowedReset},
		{[]string{passThrough, deniedReset}, passThrough},
	} {
		if got := defaultProfiled(tc.selected); got != tc.want {
			t.Errorf("defaultProfiled(%v) = %s, want %s", tc.selected, got, tc.want)
		}
	}
}

// Every workload name has a workload, the JWT one carrying the token.
func TestNewWorkloads(t *testing.T) {
	wls := newWorkloads(workloadNames, "TOKEN")
	if len(wls) != len(workloadNames) {
		t.Fatalf("%d workloads for %d names", len(wls), len(workloadNames))
	}
	if wls[0].Name != allowedResetJWT || wls[0].auth != "Bearer TOKEN" || !strings.HasPrefix(wls[0].path, "/"+jwtTenant+"/") {
		t.Errorf("JWT workload = %+v", wls[0])
	}
	if got := newWorkloads([]string{deniedReset}, ""); len(got) != 1 || got[0].Name != deniedReset {
		t.Errorf("newWorkloads(denied_reset) = %+v", got)
	}
}

// The bot token verifies under the identity.jwt the guarded gateway is
// given, and maps to the subject and tenant the handoff policy lists:
// a token the gateway refused would fail the run with 401s; one it
// accepted as another principal would be denied.
func TestBotTokenVerifies(t *testing.T) {
	jwks, token, err := botToken(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := jwtIdentity(jwks)
	v, err := credential.NewJWTVerifier(context.Background(), credential.JWTConfig{
		Issuer:     id["issuer"].(string),
		Audiences:  id["audiences"].([]string),
		Algorithms: id["algorithms"].([]string),
		JWKSFile:   id["jwks_file"].(string),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	claims, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("the bot token does not verify: %v", err)
	}
	p := credential.PrincipalFromClaims(claims, "sub", "", jwtTenantClaim)
	if p.Subject != jwtSubject || p.Tenant != jwtTenant {
		t.Errorf("principal subject %q tenant %q, want %q %q", p.Subject, p.Tenant, jwtSubject, jwtTenant)
	}
}
