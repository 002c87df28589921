package superoffice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// currentPrincipalPath is appended to the upstream and the caller's prefix.
const currentPrincipalPath = "/api/v1/User/currentPrincipal"

// userTypes are SuperOffice's UserType names in enum order, so that a
// carrier serialised with numeric enums maps to the same names policies
// are written against.
var userTypes = [...]string{
	"Unknown", "InternalAssociate", "ResourceAssociate",
	"ExternalAssociate", "AnonymousAssociate", "SystemAssociate",
}

// Carrier is the part of the caller's SoPrincipalCarrier the guard uses.
// FullName and EMailAddress are left out on purpose: personal data the
// policy does not need.
type Carrier struct {
	// Associate is the login name ("" when absent).
	Associate string
	// AssociateID is 0 when absent.
	AssociateID int64
	// UserType is the enum name: known names spelt canonically, numbers
	// mapped in enum order, unknown names kept as sent, absent "Unknown".
	UserType string
	// RoleName is the caller's role, as sent.
	RoleName string
	// UserName is the caller's user name, as sent.
	UserName string
	// DatabaseContextIdentifier is the tenant, as sent.
	DatabaseContextIdentifier string
	// Licenses are names; objects give their Name, License or
	// Description, and anything else is skipped. Nil when absent.
	Licenses []string
	// FunctionRights are the non-empty strings sent; nil when absent.
	FunctionRights []string
}

// principalFailed is a lookup that could not tell who the caller is.
func principalFailed(err error) *refusal.Refusal {
	return refusal.New(http.StatusServiceUnavailable, refusal.PrincipalLookupFailed, refusal.MessageIdentity).Wrap(err)
}

// CurrentPrincipal asks GET {upstream}{prefix}/api/v1/User/currentPrincipal
// who the caller whose credential headers are in from is.
//
// A 401 or 403 from the backend is a 401 principal_unauthenticated refusal
// (SuperOffice may report an expired token as 403; either way the
// credential identified nobody). A refused prefix, timeout, network error,
// other status, oversized or malformed body is a 503
// principal_lookup_failed. Every error is a *refusal.Refusal.
func (c *Client) CurrentPrincipal(ctx context.Context, prefix string, from http.Header) (*Carrier, error) {
	status, body, err := c.get(ctx, prefix, currentPrincipalPath, from)
	switch {
	case err != nil:
		return nil, principalFailed(err)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, refusal.New(http.StatusUnauthorized, refusal.PrincipalUnauthenticated, refusal.MessageIdentity).Wrap(answered(status))
	case status != http.StatusOK:
		return nil, principalFailed(answered(status))
	}
	p, err := parseCarrier(body)
	if err != nil {
		return nil, principalFailed(err)
	}
	return p, nil
}

// soPrincipalCarrier is the wire form. encoding/json matches keys
// case-insensitively, which covers clients and versions that camel-case
// them.
type soPrincipalCarrier struct {
	Associate                 *string
	AssociateID               json.RawMessage `json:"AssociateId"`
	UserType                  json.RawMessage
	RoleName                  string
	UserName                  string
	DatabaseContextIdentifier string
	Licenses                  []json.RawMessage
	FunctionRights            []json.RawMessage
}

// licenseObject is a license given as an object rather than a name.
type licenseObject struct {
	Name        *string
	License     *string
	Description *string
}

// parseCarrier insists on a JSON object naming someone (Associate,
// AssociateId or UserType), so that a 200 with null, an error object or
// some other document is a failed lookup rather than an empty principal.
func parseCarrier(body []byte) (*Carrier, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("superoffice: malformed principal: not a JSON object")
	}
	var w soPrincipalCarrier
	if err := json.Unmarshal(trimmed, &w); err != nil {
		return nil, fmt.Errorf("superoffice: malformed principal: %w", err)
	}
	if w.Associate == nil && isAbsent(w.AssociateID) && isAbsent(w.UserType) {
		return nil, errors.New("superoffice: malformed principal: no Associate, AssociateId or UserType")
	}
	p := &Carrier{
		RoleName:                  w.RoleName,
		UserName:                  w.UserName,
		DatabaseContextIdentifier: w.DatabaseContextIdentifier,
		UserType:                  userType(w.UserType),
	}
	if w.Associate != nil {
		p.Associate = *w.Associate
	}
	if !isAbsent(w.AssociateID) {
		id, ok := rawInt(w.AssociateID)
		if !ok {
			return nil, errors.New("superoffice: malformed principal: AssociateId is not an integer")
		}
		p.AssociateID = id
	}
	if w.Licenses != nil {
		p.Licenses = make([]string, 0, len(w.Licenses))
		for _, raw := range w.Licenses {
			if name, ok := licenseName(raw); ok {
				p.Licenses = append(p.Licenses, name)
			}
		}
	}
	if w.FunctionRights != nil {
		p.FunctionRights = make([]string, 0, len(w.FunctionRights))
		for _, raw := range w.FunctionRights {
			var s string
			if !isAbsent(raw) && json.Unmarshal(raw, &s) == nil && s != "" {
				p.FunctionRights = append(p.FunctionRights, s)
			}
		}
	}
	return p, nil
}

func isAbsent(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// rawInt reads an integer sent as a number or as a numeric string; a
// number that is not whole or not in int64 range is not one.
func rawInt(raw json.RawMessage) (int64, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		return n, err == nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	// 2^63 is exactly representable; anything at or above it overflows.
	if err != nil || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// userType returns the UserType name. An unknown name is kept as sent, so
// a newer backend's value reaches the policy rather than being guessed
// at; absent, null or out-of-range values are "Unknown", the enum's zero.
func userType(raw json.RawMessage) string {
	if isAbsent(raw) {
		return userTypes[0]
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		for _, name := range userTypes {
			if strings.EqualFold(s, name) {
				return name
			}
		}
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return userTypeNumber(int64(n))
		}
		if s == "" {
			return userTypes[0]
		}
		return s
	}
	if n, ok := rawInt(raw); ok {
		return userTypeNumber(n)
	}
	return userTypes[0]
}

func userTypeNumber(n int64) string {
	if n < 0 || n >= int64(len(userTypes)) {
		return userTypes[0]
	}
	return userTypes[n]
}

// licenseName reads one Licenses element: a string, or an object's Name,
// License or Description string (in that order). Anything else, null and
// empty names included, is skipped.
func licenseName(raw json.RawMessage) (string, bool) {
	if isAbsent(raw) {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != ""
	}
	var o licenseObject
	if json.Unmarshal(raw, &o) != nil {
		return "", false
	}
	for _, v := range [...]*string{o.Name, o.License, o.Description} {
		if v != nil && *v != "" {
			return *v, true
		}
	}
	return "", false
}
