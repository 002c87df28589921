package classify

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// Model binding: where else the backend could read a session id.
//
// ASP.NET Web API 2 binds a simple action parameter from the query string
// before the route data (its default value providers are the query
// string's, then the route's), and its jQuery form formatter binds
// prefixed and bracketed names (request.ChatSessionId,
// request[ChatSessionId], [ChatSessionId]) as well as the plain one. A
// request that names the id in one of those places beside the one the
// guard read could be decided on one id and reset another, so it is
// refused: which one the client meant is not guessed.

// errSessionIDAmbiguous is the reason for a body that names the session id
// somewhere besides its one top-level ChatSessionId field.
var errSessionIDAmbiguous = errors.New("the request names the chat session id in more than one place")

// msgQueryBindsID is the client's message for an id-naming query parameter.
const msgQueryBindsID = "the chat session id must not be named in the query string of a reset"

// CheckQuery refuses a reset whose query string has a parameter a model
// binder could take for the session id: chatSessionId or id, prefixed or
// bracketed, in any case, encoded or not. Other parameters ($select) pass.
func CheckQuery(rawQuery string) *refusal.Refusal {
	if rawQuery == "" {
		return nil
	}
	for part := range strings.FieldsFuncSeq(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		name, _, _ := strings.Cut(part, "=")
		if namesSessionID(strings.ReplaceAll(name, "+", " "), true) {
			return refusal.New(http.StatusBadRequest, refusal.SessionIDAmbiguous, msgQueryBindsID)
		}
	}
	return nil
}

// namesSessionID reports whether a parameter or field name could be bound
// to the session id: its last component (after the last '.', inside the
// last [...]) is, or ends in, ChatSessionId in any case, or, with alsoID,
// is Id (the REST route's parameter as its reference page names it).
// Escapes are decoded as often as a path's are.
func namesSessionID(name string, alsoID bool) bool {
	for range maxDecodeRounds {
		if !strings.Contains(name, "%") {
			break
		}
		d := percentDecode(name)
		if d == name {
			break
		}
		name = d
	}
	parts := strings.FieldsFunc(name, func(r rune) bool { return r == '.' || r == '[' || r == ']' })
	if len(parts) == 0 {
		return false
	}
	leaf := foldName(strings.TrimSpace(parts[len(parts)-1]))
	return strings.HasSuffix(leaf, agentsIDField) || alsoID && leaf == "id"
}

// foldName lower-cases s after mapping every rune to the smallest member
// of its case-folding orbit, so that look-alikes a .NET comparison folds
// ('ſ' for 's', the Kelvin sign for 'k') compare equal to ASCII.
func foldName(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return unicode.ToLower(least)
	}, s)
}

// RESTBody checks the body of a REST reset, which takes none: an absent
// or empty one (also whitespace, {} or null, as some clients send) is
// dropped from the forwarded request; anything else is refused, since
// the backend might bind an id from it.
func RESTBody(w http.ResponseWriter, r *http.Request, maxBytes int64, timeout time.Duration) *refusal.Refusal {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return nil
	}
	body, ref := ReadBody(w, r, maxBytes, timeout)
	if ref != nil {
		return ref
	}
	switch string(bytes.TrimSpace(body)) {
	case "", "{}", "null":
		return nil
	}
	return refusal.New(http.StatusBadRequest, refusal.RequestBodyRefused, "a REST chat-session reset takes no request body")
}

// jsonNamesSessionID reports whether a JSON value holds, at any depth, an
// object member whose name could bind the session id. The value is
// bounded by the request body limit; the caller has already decoded it
// once, so it is well-formed.
func jsonNamesSessionID(v json.RawMessage) bool {
	var doc any
	if err := json.Unmarshal(v, &doc); err != nil {
		return false
	}
	return valueNamesSessionID(doc)
}

func valueNamesSessionID(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if namesSessionID(k, false) || valueNamesSessionID(e) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if valueNamesSessionID(e) {
				return true
			}
		}
	}
	return false
}
