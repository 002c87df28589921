# No .manifest: the bundle claims all of data. Beside the files it would
# replace their data and add this rule to their package.
package strict.bundled

decision := {"allow": true, "reasons": ["from_the_bundle"]}
