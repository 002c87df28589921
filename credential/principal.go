package credential

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/resetguard/caddy-resetguard/internal/superoffice"
)

// Principal is who is calling, as the policy sees it (input.principal).
//
// A Principal returned by PrincipalLookup.Lookup is shared by every caller
// that hits the same cache entry: treat it, its slices and its map as
// read-only.
type Principal struct {
	Source         string         // "jwt", "backend" or "none"
	Subject        string         // JWT subject, or the backend's login name (SoPrincipalCarrier.Associate)
	AssociateID    int64          // 0 when unknown
	UserType       string         // SoPrincipalCarrier.UserType: Unknown, InternalAssociate, ResourceAssociate, ExternalAssociate, AnonymousAssociate, SystemAssociate
	RoleName       string         // SoPrincipalCarrier.RoleName
	UserName       string         // SoPrincipalCarrier.UserName
	Tenant         string         // DatabaseContextIdentifier, or the JWT tenant claim
	Licenses       []string       // SoPrincipalCarrier.Licenses, as names
	FunctionRights []string       // SoPrincipalCarrier.FunctionRights
	Claims         map[string]any // verified JWT claims; nil for backend principals
}

// Principal sources.
const (
	PrincipalSourceJWT     = "jwt"
	PrincipalSourceBackend = "backend"
	PrincipalSourceNone    = "none"
)

// PrincipalFromClaims maps verified JWT claims: subject from subjectClaim
// (default "sub"), associate id from associateIDClaim (string or number;
// SuperOffice sends strings like "5"; unparseable → 0), tenant from
// tenantClaim; Claims is the whole map; Source "jwt".
//
// An empty associateIDClaim or tenantClaim leaves that field empty. The
// tenant is spelt as SuperOffice does ("cust12345" → "Cust12345") so that
// policies compare one form whichever way the principal was found.
func PrincipalFromClaims(claims map[string]any, subjectClaim, associateIDClaim, tenantClaim string) *Principal {
	if subjectClaim == "" {
		subjectClaim = "sub"
	}
	p := &Principal{Source: PrincipalSourceJWT, Claims: claims}
	p.Subject = claimString(claims, subjectClaim)
	if associateIDClaim != "" {
		p.AssociateID = claimInt(claims[associateIDClaim])
	}
	if tenantClaim != "" {
		p.Tenant = canonicalTenant(claimString(claims, tenantClaim))
	}
	return p
}

// claimString returns a string claim; numbers are formatted, since some
// issuers send numeric subjects. Anything else is "".
func claimString(claims map[string]any, name string) string {
	switch v := claims[name].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	}
	return ""
}

// claimInt reads an integer claim that may be a string ("5"), a JSON
// number (float64 or json.Number) or a Go integer; anything that is not a
// whole number in int64 range is 0 ("unknown"), never a truncated guess.
func claimInt(v any) int64 {
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0
		}
		return n
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, err := x.Float64()
		if err != nil {
			return 0
		}
		return floatInt(f)
	case float64:
		return floatInt(x)
	case float32:
		return floatInt(float64(x))
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	}
	return 0
}

func floatInt(f float64) int64 {
	// 2^63 is exactly representable; anything at or above it overflows.
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0
	}
	return int64(f)
}

// principalFromCarrier maps the backend's answer. The tenant is spelt as
// SuperOffice does, as for JWT principals, so that policies compare one
// form whichever way the principal was found.
func principalFromCarrier(c *superoffice.Carrier) *Principal {
	return &Principal{
		Source:         PrincipalSourceBackend,
		Subject:        c.Associate,
		AssociateID:    c.AssociateID,
		UserType:       c.UserType,
		RoleName:       c.RoleName,
		UserName:       c.UserName,
		Tenant:         canonicalTenant(c.DatabaseContextIdentifier),
		Licenses:       c.Licenses,
		FunctionRights: c.FunctionRights,
	}
}
