# Required attestations (data.profile.attestations): at least one verified attestation of each predicate
# type and, for SLSA provenance with builderIdPattern, one whose builder id matches the pattern.
# (A rule's Rego `condition` is evaluated by vouch itself, per attestation, like a policy's condition.)
package vouch.compliance.attestations

import rego.v1

import data.vouch.compliance.lib

rules := lib.as_array(lib.get(data.profile, ["attestations"], []))

attestations := [a | some a in lib.as_array(lib.get(input.artifact, ["attestations"], [])); is_object(a)]

of_type(t) := [a | some a in attestations; a.predicateType == t]

# SLSA v1 names the builder at runDetails.builder.id, v0.2 at builder.id.
builder_id(a) := id if {
	id := lib.get(a.predicate, ["runDetails", "builder", "id"], null)
	is_string(id)
} else := id if {
	id := lib.get(a.predicate, ["builder", "id"], null)
	is_string(id)
} else := ""

deny contains msg if {
	some rule in rules
	count(of_type(rule.predicateType)) == 0
	msg := sprintf("no verified attestation of type %s", [rule.predicateType])
}

deny contains msg if {
	some rule in rules
	pattern := lib.as_string(object.get(rule, "builderIdPattern", ""))
	pattern != ""
	found := of_type(rule.predicateType)
	count(found) > 0
	matching := [a | some a in found; lib.full_match(pattern, builder_id(a))]
	count(matching) == 0
	ids := sort({id | some a in found; id := shown(builder_id(a))})
	msg := sprintf("no verified %s attestation has a builder id matching %s (found: %s)", [rule.predicateType, pattern, concat(", ", ids)])
}

shown(id) := id if id != ""

else := "none"
