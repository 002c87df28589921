# Data of the bots_only example, at data.resetguard_examples.bots_only: the
# Basic user names and verified principal subjects that count as bots.
#
# A Rego module rather than a data.json, so that it lands at the same path
# whether this directory or testdata/policies is loaded (see
# ../README.md, "Layout").
package resetguard_examples.bots_only

bots := ["chatbot", "cust12345-bot", "bot@cust12345", "https://idp.example.com/bots/handoff"]
