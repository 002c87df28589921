package classify

import (
	"errors"
	"net/http"
	"strings"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// msgBadSessionID is errBadSessionID's text, which is also the client's
// message for an id that does not parse: it holds no request data.
const msgBadSessionID = "chat session id must be a decimal integer in 1..2147483647"

// errBadSessionID is the reason for any chat-session id that is not a
// decimal int32 in 1..2147483647.
var errBadSessionID = errors.New(msgBadSessionID)

// SessionID accepts plain decimal digits (leading zeros allowed, as the
// backend's int32 binder allows them) with a value in int32's positive
// range. Signs, spaces and exponents are refused: what the guard cannot
// read exactly as the backend will, it does not guess at.
func SessionID(s string) (int32, error) {
	s = strings.TrimLeft(s, "0")
	if s == "" || len(s) > 10 {
		return 0, errBadSessionID
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errBadSessionID
		}
		v = v*10 + int64(c-'0')
	}
	if v < 1 || v > 1<<31-1 {
		return 0, errBadSessionID
	}
	return int32(v), nil
}

// PathSessionID reads the REST route's id from its path segment
// (Target.IDSegment), or returns the 400 bad_session_id refusal.
func PathSessionID(segment string) (int32, *refusal.Refusal) {
	id, err := SessionID(segment)
	if err != nil {
		return 0, refusal.New(http.StatusBadRequest, refusal.BadSessionID, msgBadSessionID).Wrap(err)
	}
	return id, nil
}

// oneID returns id when an Agents body or a SOAP envelope named
// ChatSessionId exactly once (found is how often it did): none or several
// is ambiguity, refused rather than guessed.
func oneID(id string, found int) (string, error) {
	switch found {
	case 0:
		return "", errors.New("ChatSessionId missing from the request body")
	case 1:
		return id, nil
	default:
		return "", errors.New("ChatSessionId given more than once")
	}
}
