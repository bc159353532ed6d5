package vouch.compliance.attestations_test

import rego.v1

import data.vouch.compliance.attestations

slsa_v1 := "https://slsa.dev/provenance/v1"

slsa_v02 := "https://slsa.dev/provenance/v0.2"

profile := {"attestations": [
	{"predicateType": slsa_v1, "builderIdPattern": "https://github.com/actions/runner(/.*)?"},
	{"predicateType": "https://cyclonedx.org/bom"},
]}

v1(builder) := {"predicateType": slsa_v1, "predicate": {"runDetails": {"builder": {"id": builder}}}, "signer": {"kind": "key"}}

bom := {"predicateType": "https://cyclonedx.org/bom", "predicate": {}}

with_attestations(list) := {"artifact": {"attestations": list}}

test_compliant if {
	count(attestations.deny) == 0 with input as with_attestations([v1("https://github.com/actions/runner"), bom])
		with data.profile as profile
}

test_missing_types_are_named if {
	attestations.deny == {
		"no verified attestation of type https://slsa.dev/provenance/v1",
		"no verified attestation of type https://cyclonedx.org/bom",
	} with input as {"artifact": {"attestations": null}}
		with data.profile as profile
}

test_untrusted_builder if {
	attestations.deny == {"no verified https://slsa.dev/provenance/v1 attestation has a builder id matching https://github.com/actions/runner(/.*)? (found: https://evil.example, https://github.com/actions/runner-evil)"} with input as with_attestations([v1("https://evil.example"), v1("https://github.com/actions/runner-evil"), bom])
		with data.profile as profile
}

test_one_matching_builder_is_enough if {
	count(attestations.deny) == 0 with input as with_attestations([v1("https://evil.example"), v1("https://github.com/actions/runner/1"), bom])
		with data.profile as profile
}

test_slsa_v02_builder_id_is_read if {
	p := {"attestations": [{"predicateType": slsa_v02, "builderIdPattern": "https://github.com/actions/runner"}]}
	ok := {"predicateType": slsa_v02, "predicate": {"builder": {"id": "https://github.com/actions/runner"}}}
	bad := {"predicateType": slsa_v02, "predicate": {"builder": {"id": "https://evil.example"}}}
	count(attestations.deny) == 0 with input as with_attestations([ok]) with data.profile as p
	attestations.deny == {"no verified https://slsa.dev/provenance/v0.2 attestation has a builder id matching https://github.com/actions/runner (found: https://evil.example)"} with input as with_attestations([bad])
		with data.profile as p
}

test_malformed_predicates_have_no_builder if {
	p := {"attestations": [{"predicateType": slsa_v1, "builderIdPattern": ".*"}]}
	odd := [
		{"predicateType": slsa_v1, "predicate": "text"},
		{"predicateType": slsa_v1, "predicate": {"runDetails": {"builder": {"id": 7}}}},
		{"predicateType": slsa_v1},
	]

	# ".*" matches the empty id, so the pattern needs a non-empty id to be meaningful; with "+":
	p2 := {"attestations": [{"predicateType": slsa_v1, "builderIdPattern": ".+"}]}
	attestations.deny == {"no verified https://slsa.dev/provenance/v1 attestation has a builder id matching .+ (found: none)"} with input as with_attestations(odd)
		with data.profile as p2
	count(attestations.deny) == 0 with input as with_attestations(odd) with data.profile as p
}

test_no_rules_no_violations if {
	count(attestations.deny) == 0 with input as {} with data.profile as {}
}
