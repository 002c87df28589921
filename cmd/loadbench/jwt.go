package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// The bot the JWT-bearer workload signs in as. testdata/policies/handoff
// lists subject "bot@cust12345" as a bot of tenant Cust12345, and the
// policy compares a bot's tenant with the path's, so the workload's path
// carries that tenant; the token's tenant claim names the same tenant, as
// an Online id_token would, so the guard's tenant check runs and passes.
const (
	jwtIssuer   = "https://idp.loadbench.invalid"
	jwtAudience = "resetguard-loadbench"
	jwtKeyID    = "loadbench-1"
	jwtSubject  = "bot@cust12345"
	jwtTenant   = "Cust12345"
	// jwtTenantClaim is the guard's default tenant claim (SuperOffice
	// id_tokens carry it under this name).
	jwtTenantClaim = "http://schemes.superoffice.net/identity/ctx"
)

// botToken makes a fresh RSA-2048 key, writes its public half as a JWKS
// file in dir and returns that file's path and an RS256 bot token signed
// with it. The token is valid for a day, well past any run: an expiry
// during a soak would turn it into a run of 401s.
func botToken(dir string) (jwksPath, token string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &key.PublicKey, KeyID: jwtKeyID, Algorithm: string(jose.RS256), Use: "sig"},
	}}
	raw, err := json.Marshal(set)
	if err != nil {
		return "", "", err
	}
	jwksPath = filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksPath, raw, 0o600); err != nil {
		return "", "", err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: jwtKeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	token, err = josejwt.Signed(signer).
		Claims(josejwt.Claims{
			Issuer:    jwtIssuer,
			Audience:  josejwt.Audience{jwtAudience},
			Subject:   jwtSubject,
			IssuedAt:  josejwt.NewNumericDate(now.Add(-time.Minute)),
			NotBefore: josejwt.NewNumericDate(now.Add(-time.Minute)),
			Expiry:    josejwt.NewNumericDate(now.Add(24 * time.Hour)),
		}).
		Claims(map[string]any{jwtTenantClaim: jwtTenant}).
		Serialize()
	if err != nil {
		return "", "", fmt.Errorf("signing the bot token: %w", err)
	}
	return jwksPath, token, nil
}

// jwtIdentity is the guarded gateway's identity.jwt for botToken's
// issuer and key.
func jwtIdentity(jwksPath string) map[string]any {
	return map[string]any{
		"issuer":     jwtIssuer,
		"audiences":  []string{jwtAudience},
		"algorithms": []string{string(jose.RS256)},
		"jwks_file":  jwksPath,
	}
}
