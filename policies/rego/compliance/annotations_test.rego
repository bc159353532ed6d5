package vouch.compliance.annotations_test

import rego.v1

import data.vouch.compliance.annotations

profile := {"annotations": [
	{"key": "org.opencontainers.image.source", "pattern": "https://github.com/acme/.*"},
	{"key": "org.opencontainers.image.licenses", "in": "manifest", "values": ["Apache-2.0", "MIT"]},
	{"key": "org.opencontainers.image.vendor", "in": "config"},
]}

artifact(manifest, config) := {"artifact": {
	"manifest": {"annotations": manifest},
	"config": {"annotations": config},
}}

good := artifact(
	{"org.opencontainers.image.source": "https://github.com/acme/app", "org.opencontainers.image.licenses": "MIT"},
	{"org.opencontainers.image.vendor": "Acme"},
)

# The good artifact with some manifest annotations replaced.
with_manifest(changes) := object.union(good, {"artifact": {"manifest": {"annotations": changes}}})

test_compliant_artifact_has_no_violations if {
	count(annotations.deny) == 0 with input as good with data.profile as profile
}

test_no_rules_no_violations if {
	count(annotations.deny) == 0 with input as {} with data.profile as {}
}

test_missing_annotations_are_named if {
	annotations.deny == {
		"annotation org.opencontainers.image.source is missing",
		"manifest annotation org.opencontainers.image.licenses is missing",
		"config annotation org.opencontainers.image.vendor is missing",
	} with input as artifact({}, null) with data.profile as profile
}

test_manifest_only_rule_ignores_config if {
	in_config := artifact(
		{"org.opencontainers.image.source": "https://github.com/acme/app"},
		{"org.opencontainers.image.vendor": "Acme", "org.opencontainers.image.licenses": "MIT"},
	)
	annotations.deny == {"manifest annotation org.opencontainers.image.licenses is missing"} with input as in_config
		with data.profile as profile
}

test_any_finds_config_labels if {
	in_config := artifact(
		{"org.opencontainers.image.licenses": "MIT"},
		{"org.opencontainers.image.vendor": "Acme", "org.opencontainers.image.source": "https://github.com/acme/app"},
	)
	count(annotations.deny) == 0 with input as in_config with data.profile as profile
}

test_value_outside_the_list if {
	bad := with_manifest({"org.opencontainers.image.licenses": "GPL-3.0"})
	annotations.deny == {`manifest annotation org.opencontainers.image.licenses is "GPL-3.0", not one of ["Apache-2.0", "MIT"]`} with input as bad
		with data.profile as profile
}

test_pattern_must_match_the_whole_value if {
	bad := with_manifest({"org.opencontainers.image.source": "https://evil.example/?https://github.com/acme/x"})
	annotations.deny == {`manifest annotation org.opencontainers.image.source is "https://evil.example/?https://github.com/acme/x", which does not match the pattern https://github.com/acme/.*`} with input as bad
		with data.profile as profile
}

test_any_requires_every_present_value_to_be_allowed if {
	# The manifest says acme, an inherited config label says otherwise: fail closed.
	both := object.union(good, {"artifact": {"config": {"annotations": {"org.opencontainers.image.source": "https://github.com/other/base"}}}})
	annotations.deny == {`config annotation org.opencontainers.image.source is "https://github.com/other/base", which does not match the pattern https://github.com/acme/.*`} with input as both
		with data.profile as profile
}

test_non_string_values_are_never_allowed if {
	# Image config labels come from the image as published: a number is not the string "1".
	p := {"annotations": [{"key": "a", "in": "config", "values": ["1"]}, {"key": "b", "in": "config", "pattern": ".*"}]}
	annotations.deny == {
		`config annotation a is 1, not one of ["1"]`,
		`config annotation b is {"x":1}, which does not match the pattern .*`,
	} with input as artifact({}, {"a": 1, "b": {"x": 1}})
		with data.profile as p
}
