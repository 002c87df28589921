package audit

import "github.com/resetguard/caddy-resetguard/internal/superoffice"

// DecodeEntity decodes an entity the way the handler does, for the tests
// that build records from the fixture entity (record, schema, file sink).
// The decoder and its own tests live in internal/superoffice.
func DecodeEntity(body []byte, contentType, contentEncoding string, maxDecoded int64) (*ChatSession, error) {
	e, err := superoffice.DecodeEntity(body, contentType, contentEncoding, superoffice.DecodeOptions{MaxDecoded: maxDecoded})
	if err != nil {
		return nil, err
	}
	return e.Session, nil
}
