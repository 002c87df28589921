// Package refusal holds the guard's one refusal type: why a guarded
// request is not forwarded, or why a forwarded one failed, with the status
// and reasons the client is told and the audit record keeps.
//
// Every step that can refuse (classification, credential, identity,
// backend lookups, policy, audit, forwarding) returns a *Refusal; the
// handler turns it into the response, the record, the metrics and the
// placeholders in one place.
package refusal

import (
	"errors"
	"net/http"
	"strings"
)

// Refusal is one refused (or failed) guarded request. Its texts are fixed
// per reason or come from the policy; they never hold request data, so a
// Refusal may be logged and shown to the client as it is. Err, the cause,
// is for the gateway's own log only.
type Refusal struct {
	// Status is the HTTP status the client gets.
	Status int
	// Reasons are the reason words the client is told and the record
	// keeps (joined with ","): one of the constants in this package, or
	// a policy's own reasons.
	Reasons []string
	// Message is the fixed text of the client's error body.
	Message string
	// Challenge marks a refusal of the caller's credential or identity:
	// the response carries a WWW-Authenticate challenge per accepted
	// scheme. A policy's own 401 or a backend lookup's does not.
	Challenge bool
	// InvalidToken marks a bearer token that was presented and refused:
	// the Bearer challenge then says error="invalid_token" (RFC 6750).
	InvalidToken bool
	// Header holds response headers the refusal carries (Allow, a
	// policy's headers, Connection: close after a stalled body).
	Header http.Header
	// Err is the underlying cause, if any.
	Err error
}

// New returns a refusal with one reason.
func New(status int, reason, message string) *Refusal {
	return &Refusal{Status: status, Reasons: []string{reason}, Message: message}
}

// Unauthenticated returns a 401 refusal for a credential that is missing
// or was not accepted; invalidToken marks a refused bearer token.
func Unauthenticated(reason string, invalidToken bool) *Refusal {
	return &Refusal{Status: http.StatusUnauthorized, Reasons: []string{reason},
		Message: MessageUnauthenticated, Challenge: true, InvalidToken: invalidToken}
}

// Wrap records the cause and returns r.
func (r *Refusal) Wrap(err error) *Refusal {
	r.Err = err
	return r
}

// WithHeader adds a response header and returns r.
func (r *Refusal) WithHeader(name, value string) *Refusal {
	if r.Header == nil {
		r.Header = make(http.Header, 1)
	}
	r.Header.Add(name, value)
	return r
}

// Reason is the reasons as one word list ("a,b"), as event.reason and
// the {http.reset_guard.reasons} placeholder carry them.
func (r *Refusal) Reason() string {
	return strings.Trim(strings.Join(r.Reasons, ","), ",")
}

// Has reports whether reason is among r's reasons.
func (r *Refusal) Has(reason string) bool {
	for _, x := range r.Reasons {
		if x == reason {
			return true
		}
	}
	return false
}

func (r *Refusal) Error() string {
	s := "reset_guard: " + r.Reason()
	if r.Message != "" {
		s += ": " + r.Message
	}
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (r *Refusal) Unwrap() error { return r.Err }

// As finds the *Refusal in err's chain.
func As(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}
