package classify

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// errUnsupportedBody is returned for an Agents request body whose media
// type the guard cannot read: the id cannot be known, so it is refused.
var errUnsupportedBody = errors.New("request body media type not supported on the reset route")

// msgBodyAmbiguous is the client's message for an Agents body naming the
// id somewhere besides its one top-level ChatSessionId field.
const msgBodyAmbiguous = "the request body must name ChatSessionId once, as a top-level field"

// agentsIDField is the Agents API's parameter name; the backend's model
// binder matches it case-insensitively.
const agentsIDField = "chatsessionid"

// AgentsSessionID reads the ChatSessionId of an Agents ResetChatSession
// request from its body, which it reads with ReadBody (bounded by
// maxBytes and timeout) and restores for the backend. The query string
// is CheckQuery's. Every failure is the refusal the client gets.
func AgentsSessionID(w http.ResponseWriter, r *http.Request, maxBytes int64, timeout time.Duration) (int32, *refusal.Refusal) {
	body, ref := ReadBody(w, r, maxBytes, timeout)
	if ref != nil {
		return 0, ref
	}
	id, err := sessionIDFromBody(r.Header.Get("Content-Type"), body)
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, errUnsupportedBody):
		return 0, refusal.New(http.StatusUnsupportedMediaType, refusal.UnsupportedMediaType,
			"the request body must be JSON, XML or form-encoded").Wrap(err)
	case errors.Is(err, errXMLDTD):
		return 0, xmlDTDRefusal(err)
	case errors.Is(err, errSessionIDAmbiguous):
		return 0, refusal.New(http.StatusBadRequest, refusal.SessionIDAmbiguous, msgBodyAmbiguous).Wrap(err)
	case errors.Is(err, errBadSessionID):
		return 0, refusal.New(http.StatusBadRequest, refusal.BadSessionID, msgBadSessionID).Wrap(err)
	default:
		return 0, refusal.New(http.StatusBadRequest, refusal.BadSessionID,
			"the request body holds no single valid ChatSessionId").Wrap(err)
	}
}

// sessionIDFromBody reads the ChatSessionId of an Agents
// ResetChatSession request body: JSON, XML or form-encoded, chosen by
// contentType or, when that is absent, by the first non-space byte. A
// missing, duplicated or malformed id is an error: ambiguity is refused,
// never guessed.
func sessionIDFromBody(contentType string, body []byte) (int32, error) {
	kind, err := bodyKind(contentType, body)
	if err != nil {
		return 0, err
	}
	var raw string
	switch kind {
	case "json":
		raw, err = idFromJSON(body)
	case "xml":
		raw, err = idFromXML(body)
	default:
		raw, err = idFromForm(body)
	}
	if err != nil {
		return 0, err
	}
	return SessionID(strings.TrimSpace(raw))
}

// bodyKind is how an Agents body is to be read: "json", "xml" or "form".
// The backend's formatters go by the media type; without one, a body is
// sniffed as a lenient client library would send it.
func bodyKind(contentType string, body []byte) (string, error) {
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return "", fmt.Errorf("%w: %w", errUnsupportedBody, err)
		}
		switch {
		case mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json"):
			return "json", nil
		case mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml"):
			return "xml", nil
		case mt == "application/x-www-form-urlencoded":
			return "form", nil
		default:
			return "", fmt.Errorf("%w: %s", errUnsupportedBody, mt)
		}
	}
	switch t := bytes.TrimLeft(body, " \t\r\n"); {
	case len(t) == 0:
		return "", errors.New("empty request body: ChatSessionId missing")
	case t[0] == '{':
		return "json", nil
	case t[0] == '<':
		return "xml", nil
	default:
		return "form", nil
	}
}

// idFromJSON walks the top-level object token by token, so that a
// duplicated key (which encoding/json would silently resolve to the last
// one) is seen and refused.
func idFromJSON(body []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return "", fmt.Errorf("json body: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return "", errors.New("json body: want an object")
	}
	var id string
	found := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("json body: %w", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", fmt.Errorf("json body: %w", err)
		}
		if !strings.EqualFold(key, agentsIDField) {
			if namesSessionID(key, false) || jsonNamesSessionID(v) {
				return "", errSessionIDAmbiguous
			}
			continue
		}
		found++
		var n json.Number
		var s string
		switch {
		case json.Unmarshal(v, &n) == nil:
			id = n.String()
		case json.Unmarshal(v, &s) == nil:
			id = s
		default:
			return "", errBadSessionID
		}
	}
	if _, err := dec.Token(); err != nil {
		return "", fmt.Errorf("json body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("json body: data after the object")
	}
	return oneID(id, found)
}

// idFromXML finds every ChatSessionId element at any depth, whatever its
// namespace, as a lenient XML binder might.
func idFromXML(body []byte) (string, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	var id strings.Builder
	found, depthInID := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("xml body: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return "", errXMLDTD
		case xml.StartElement:
			if depthInID > 0 {
				// An id element holding markup is not an id.
				return "", errBadSessionID
			}
			if strings.EqualFold(t.Name.Local, agentsIDField) {
				found++
				depthInID++
				id.Reset()
			}
		case xml.EndElement:
			if depthInID > 0 {
				depthInID--
			}
		case xml.CharData:
			if depthInID > 0 {
				id.Write(t)
			}
		}
	}
	return oneID(id.String(), found)
}

// idFromForm counts every value of every key matching ChatSessionId in
// any case, because the backend's binder would take any of them.
func idFromForm(body []byte) (string, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return "", fmt.Errorf("form body: %w", err)
	}
	var id string
	found := 0
	for k, vs := range vals {
		switch {
		case strings.EqualFold(k, agentsIDField):
			found += len(vs)
			if len(vs) > 0 {
				id = vs[0]
			}
		case namesSessionID(k, false):
			return "", errSessionIDAmbiguous
		}
	}
	return oneID(id, found)
}
