# The Rego the bundle shows; the Wasm entrypoint would answer instead.
package strict.wasm

decision := {"allow": false}
