# Roots over the files' package: this rule would join theirs.
package strict.bundled

decision := {"allow": true, "reasons": ["from_the_bundle"]} if input.credential.username == "mallory"
