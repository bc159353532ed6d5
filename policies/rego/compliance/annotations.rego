# Required annotations (data.profile.annotations): each present in the OCI manifest annotations and/or the
# config (image config labels, model descriptor fields), with an allowed value or one matching a pattern.
package vouch.compliance.annotations

import rego.v1

import data.vouch.compliance.lib

# Annotations by where they were read; a missing or null document reads as empty.
documents := {
	"manifest": lib.as_object(lib.get(input.artifact, ["manifest", "annotations"], {})),
	"config": lib.as_object(lib.get(input.artifact, ["config", "annotations"], {})),
}

rules := lib.as_array(lib.get(data.profile, ["annotations"], []))

where(rule) := object.get(rule, "in", "any")

searched(rule) := ["manifest", "config"] if where(rule) == "any"

else := [where(rule)]

# Every value of the rule's key, with where it was found.
found(rule) := [{"in": doc, "value": v} |
	some doc in searched(rule)
	v := documents[doc][rule.key]
]

# "annotation k" for `any`, "manifest annotation k" / "config annotation k" otherwise.
subject(rule) := sprintf("annotation %s", [rule.key]) if where(rule) == "any"

else := sprintf("%s annotation %s", [where(rule), rule.key])

quoted(values) := concat(", ", [sprintf("%q", [v]) | some v in values])

deny contains msg if {
	some rule in rules
	count(found(rule)) == 0
	msg := sprintf("%s is missing", [subject(rule)])
}

deny contains msg if {
	some rule in rules
	values := lib.as_array(object.get(rule, "values", []))
	count(values) > 0
	some f in found(rule)
	not f.value in values
	msg := sprintf("%s annotation %s is %s, not one of [%s]", [f.in, rule.key, json.marshal(f.value), quoted(values)])
}

deny contains msg if {
	some rule in rules
	pattern := lib.as_string(object.get(rule, "pattern", ""))
	pattern != ""
	some f in found(rule)
	not lib.full_match(pattern, f.value)
	msg := sprintf("%s annotation %s is %s, which does not match the pattern %s", [f.in, rule.key, json.marshal(f.value), pattern])
}
