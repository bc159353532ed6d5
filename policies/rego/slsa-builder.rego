# Allow SLSA provenance (v1: runDetails.builder.id, v0.2: builder.id) built by a trusted builder.
# Replace {{BUILDERS}} with a comma-separated list of quoted builder ids, e.g. "https://github.com/actions/runner".
package vouch.slsa_builder

import rego.v1

trusted_builders := {{{BUILDERS}}}

builder_id := object.get(input.predicate, ["runDetails", "builder", "id"], object.get(input.predicate, ["builder", "id"], ""))

default allow := false

allow if builder_id in trusted_builders

deny contains msg if {
	not allow
	msg := sprintf("builder %q is not trusted", [builder_id])
}
