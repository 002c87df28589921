package resetguard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/policy"
)

// Identity configures how the caller's identity (input.principal) is
// established.
type Identity struct {
	// JWT verifies JWT bearer tokens from an identity provider and takes
	// the principal from their claims. Without it JWT-shaped bearer
	// tokens are refused.
	JWT *JWTIdentity `json:"jwt,omitempty"`

	// PrincipalLookup asks the backend who the caller is
	// (GET {prefix}/api/v1/User/currentPrincipal with the caller's own
	// credentials) for Basic, SoTicket, SuperOffice bearer and XSRF
	// callers, and caches the answer.
	PrincipalLookup *PrincipalLookupIdentity `json:"principal_lookup,omitempty"`
}

// JWTIdentity configures JWT verification.
type JWTIdentity struct {
	// Issuer is the exact "iss" required. Required.
	Issuer string `json:"issuer"`
	// Audiences: the token's "aud" must contain one of them. Required.
	Audiences []string `json:"audiences"`
	// Algorithms allowed in "alg". Default RS256, ES256; "none" and HMAC
	// algorithms are refused.
	Algorithms []string `json:"algorithms,omitempty"`
	// Leeway for exp, nbf and iat. Default 30s.
	Leeway caddy.Duration `json:"leeway,omitempty"`
	// JWKSFile or JWKSURL names the issuer's key set (one of them).
	JWKSFile string `json:"jwks_file,omitempty"`
	JWKSURL  string `json:"jwks_url,omitempty"`
	// Refresh is the periodic refresh of a JWKS URL. Default 15m.
	Refresh caddy.Duration `json:"refresh,omitempty"`
	// MinRefresh rate-limits refreshes triggered by an unknown key id.
	// Default 30s.
	MinRefresh caddy.Duration `json:"min_refresh,omitempty"`
	// RequiredClaims must be present in every token.
	RequiredClaims []string `json:"required_claims,omitempty"`
	// MaxTokenBytes refuses longer tokens before parsing. Default 8192.
	MaxTokenBytes int `json:"max_token_bytes,omitempty"`
	// SubjectClaim, AssociateIDClaim and TenantClaim name the claims
	// mapped to principal.subject, .associate_id and .tenant. Defaults:
	// "sub", SuperOffice's
	// "http://schemes.superoffice.net/identity/associateid" and
	// "http://schemes.superoffice.net/identity/ctx".
	SubjectClaim     string `json:"subject_claim,omitempty"`
	AssociateIDClaim string `json:"associate_id_claim,omitempty"`
	TenantClaim      string `json:"tenant_claim,omitempty"`
}

// PrincipalLookupIdentity configures the backend principal lookup.
type PrincipalLookupIdentity struct {
	// Upstream is the backend's base URL, e.g. http://127.0.0.1:8081.
	Upstream string `json:"upstream"`
	// Timeout bounds one lookup; past it the reset gets 503. Default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// TTL of a cached principal. Default 60s.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// MaxEntries bounds the cache. Default 10000.
	MaxEntries int `json:"max_entries,omitempty"`
}

// Default claim names: SuperOffice id_tokens carry string-valued claims
// under this prefix.
const (
	superOfficeClaim        = "http://schemes.superoffice.net/identity/"
	defaultSubjectClaim     = "sub"
	defaultAssociateIDClaim = superOfficeClaim + "associateid"
	defaultTenantClaim      = superOfficeClaim + "ctx"
)

// identity is the provisioned form of Identity.
type identity struct {
	jwt        *credential.JWTVerifier
	claims     [3]string // subject, associate id, tenant claim names
	principals *credential.PrincipalLookup
}

func (i *Identity) provision(ctx context.Context) (*identity, error) {
	out := &identity{}
	if i == nil {
		return out, nil
	}
	repl := caddy.NewReplacer()
	if j := i.JWT; j != nil {
		v, err := credential.NewJWTVerifier(ctx, credential.JWTConfig{
			Issuer:             j.Issuer,
			Audiences:          j.Audiences,
			Algorithms:         j.Algorithms,
			Leeway:             time.Duration(j.Leeway),
			JWKSFile:           j.JWKSFile,
			JWKSURL:            repl.ReplaceKnown(j.JWKSURL, ""),
			RefreshInterval:    time.Duration(j.Refresh),
			MinRefreshInterval: time.Duration(j.MinRefresh),
			RequiredClaims:     j.RequiredClaims,
			MaxTokenBytes:      j.MaxTokenBytes,
		})
		if err != nil {
			return nil, fmt.Errorf("identity jwt: %w", err)
		}
		out.jwt = v
		out.claims = [3]string{orDefault(j.SubjectClaim, defaultSubjectClaim),
			orDefault(j.AssociateIDClaim, defaultAssociateIDClaim), orDefault(j.TenantClaim, defaultTenantClaim)}
	}
	if p := i.PrincipalLookup; p != nil {
		upstream := repl.ReplaceKnown(p.Upstream, "")
		if u, err := url.Parse(upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			out.close()
			return nil, fmt.Errorf("identity principal_lookup upstream %q: want an http(s) URL", p.Upstream)
		}
		l, err := credential.NewPrincipalLookup(credential.PrincipalLookupConfig{
			Upstream:   upstream,
			Timeout:    time.Duration(p.Timeout),
			TTL:        time.Duration(p.TTL),
			MaxEntries: p.MaxEntries,
			OnCache: func(hit bool) {
				if hit {
					guardMetrics.principalHits.Inc()
				} else {
					guardMetrics.principalMisses.Inc()
				}
			},
		})
		if err != nil {
			out.close()
			return nil, fmt.Errorf("identity principal_lookup: %w", err)
		}
		out.principals = l
	}
	return out, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (id *identity) close() {
	if id != nil && id.jwt != nil {
		id.jwt.Close()
	}
}

// identityFailure is why no principal could be established.
type identityFailure struct {
	status  int
	reason  string
	invalid bool // a bearer token was refused: error="invalid_token"
	err     error
}

// principal establishes who is calling: from a verified JWT, from the
// backend (cached), or "none" when neither is configured.
func (id *identity) principal(ctx context.Context, fp *credential.Fingerprinter, cred credential.Credential, prefix string, h http.Header) (*credential.Principal, *identityFailure) {
	if cred.Kind == credential.KindJWT {
		claims, err := id.jwt.Verify(ctx, cred.BearerToken())
		if err != nil {
			reason := "invalid_token"
			if f, ok := credential.AsFailure(err); ok {
				reason = f.Reason
			}
			return nil, &identityFailure{status: http.StatusUnauthorized, reason: reason, invalid: true, err: err}
		}
		return credential.PrincipalFromClaims(claims, id.claims[0], id.claims[1], id.claims[2]), nil
	}
	if id.principals == nil {
		return &credential.Principal{Source: "none"}, nil
	}
	// The cache key covers every header the lookup sends, so that two
	// callers sharing an XSRF value but not a session cookie never share
	// a principal.
	key := fp.Key(string(cred.Scheme), prefix,
		strings.Join(h.Values("Authorization"), "\n"), strings.Join(h.Values("Cookie"), "\n"),
		strings.Join(h.Values("X-Xsrf-Token"), "\n"), strings.Join(h.Values("So-Apptoken"), "\n"))
	p, err := id.principals.Lookup(ctx, key, prefix, h)
	if err != nil {
		var le *credential.LookupError
		if errors.As(err, &le) {
			return nil, &identityFailure{status: le.Status, reason: le.Reason, err: err}
		}
		return nil, &identityFailure{status: http.StatusServiceUnavailable, reason: "principal_lookup_failed", err: err}
	}
	return p, nil
}

// policyPrincipal converts for the policy input.
func policyPrincipal(p *credential.Principal) policy.Principal {
	return policy.Principal{
		Source:         p.Source,
		Subject:        p.Subject,
		AssociateID:    p.AssociateID,
		UserType:       p.UserType,
		RoleName:       p.RoleName,
		UserName:       p.UserName,
		Tenant:         p.Tenant,
		Licenses:       p.Licenses,
		FunctionRights: p.FunctionRights,
		Claims:         p.Claims,
	}
}
