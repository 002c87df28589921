package audit

import "github.com/resetguard/caddy-resetguard/internal/superoffice"

// ChatSession is the chat_session block of a record: the audit-safe
// projection of the ChatSessionEntity the backend returned, decoded by
// superoffice.DecodeEntity. The type lives with the decoder so that
// nothing but the decoder fills it, and audit depends on the entity it
// records rather than the other way round.
type ChatSession = superoffice.ChatSession
