# METADATA
# title: Chat-session hand-off
# description: |
#   Who may reset a chat session (hand it from a bot to human agents).
#   Only callers listed as bots in data.handoff.bots may, and only in their
#   own tenant; sessions listed in data.handoff.protected_sessions are never
#   reset through the gateway. Query: data.resetguard.handoff.decision
package resetguard.handoff

# Every refusal names why, so the client and the audit trail can tell.
default decision := {"allow": false, "reasons": ["caller_not_a_listed_bot"]}

decision := {"allow": true, "reasons": ["listed_bot"], "headers": {"X-ResetGuard-Bot": bot.name}} if {
	count(deny) == 0
	bot
}

decision := {"allow": false, "reasons": sort([r | some r in deny])} if count(deny) > 0

deny contains "tenant_mismatch" if {
	input.credential.tenant != ""
	lower(input.credential.tenant) != lower(input.tenant)
}

deny contains "session_protected" if input.session_id in data.handoff.protected_sessions

deny contains "wrong_action" if input.action != "chat_session.reset"

# A bot known by its onsite user name (Basic credential).
bot := b if {
	input.credential.kind == "basic"
	some b in data.handoff.bots
	b.username == input.credential.username
	lower(b.tenant) == lower(input.tenant)
}

# A bot known by its verified principal (JWT subject or backend lookup);
# principal.source is "none" until identity is established.
else := b if {
	input.principal.source != "none"
	some b in data.handoff.bots
	b.subject == input.principal.subject
	lower(b.tenant) == lower(input.tenant)
}
