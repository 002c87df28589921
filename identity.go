package resetguard

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/internal/superoffice"
	"github.com/resetguard/caddy-resetguard/policy"
)

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
			// durationOff (-1) is negative: no cache.
			CacheTTL:        time.Duration(j.CacheTTL),
			CacheMaxEntries: j.CacheMaxEntries,
		})
		if err != nil {
			return nil, fmt.Errorf("identity jwt: %w", err)
		}
		out.jwt = v
		out.claims = [3]string{orDefault(j.SubjectClaim, defaultSubjectClaim),
			orDefault(j.AssociateIDClaim, defaultAssociateIDClaim), orDefault(j.TenantClaim, defaultTenantClaim)}
	}
	if p := i.PrincipalLookup; p != nil {
		// Counted for the server the handler is provisioned for.
		sm := metricsFor(ctx)
		upstream := repl.ReplaceKnown(p.Upstream, "")
		backend, err := superoffice.NewClient(superoffice.Config{Upstream: upstream, Timeout: time.Duration(p.Timeout)})
		if err != nil {
			out.close()
			return nil, fmt.Errorf("identity principal_lookup: %w", err)
		}
		l, err := credential.NewPrincipalLookup(credential.PrincipalLookupConfig{
			Backend:    backend,
			TTL:        time.Duration(p.TTL),
			MaxEntries: p.MaxEntries,
			OnCache: func(hit bool) {
				if hit {
					sm.principalHits.Inc()
				} else {
					sm.principalMisses.Inc()
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

// principal establishes who is calling: from a verified JWT, from the
// backend (cached), or "none" when neither is configured.
func (id *identity) principal(ctx context.Context, fp *credential.Fingerprinter, cred credential.Credential, prefix string, h http.Header) (*credential.Principal, *refusal.Refusal) {
	if cred.Kind == credential.KindJWT {
		claims, err := id.jwt.Verify(ctx, cred.BearerToken())
		if err != nil {
			return nil, identityRefusal(err, http.StatusUnauthorized, refusal.InvalidToken, true)
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
		status := http.StatusServiceUnavailable
		if ref, ok := refusal.As(err); ok {
			status = ref.Status
		}
		return nil, identityRefusal(err, status, refusal.PrincipalLookupFailed, false)
	}
	return p, nil
}

// identityRefusal refuses a caller whose identity could not be
// established: with the reason the verifier gave, if it gave one, else
// the fallback.
func identityRefusal(err error, status int, reason string, invalidToken bool) *refusal.Refusal {
	if r, ok := refusal.As(err); ok && r.Reason() != "" {
		reason = r.Reason()
	}
	ref := refusal.New(status, reason, refusal.MessageIdentity).Wrap(err)
	ref.InvalidToken = invalidToken
	ref.Challenge = status == http.StatusUnauthorized
	return ref
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
