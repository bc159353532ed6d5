package vouch.compliance.sbom_test

import rego.v1

import data.vouch.compliance.sbom

sbom_of(version) := {"artifact": {"sbom": {"specVersion": version, "components": 12, "digest": "sha256:00"}}}

test_compliant if {
	count(sbom.deny) == 0 with input as sbom_of("1.6") with data.profile as {"sbom": {"minSpecVersion": "1.5"}}
	count(sbom.deny) == 0 with input as sbom_of("1.5") with data.profile as {"sbom": {"minSpecVersion": "1.5"}}
	count(sbom.deny) == 0 with input as sbom_of("1.10") with data.profile as {"sbom": {"minSpecVersion": "1.9"}}
}

test_missing_sbom if {
	msg := {"a verified SBOM is required but none was found"}
	sbom.deny == msg with input as {"artifact": {"sbom": null}} with data.profile as {"sbom": {"required": true}}
	sbom.deny == msg with input as {"artifact": {}} with data.profile as {"sbom": {"minSpecVersion": "1.5"}}
}

test_old_spec_version if {
	sbom.deny == {"SBOM spec version 1.4 is below the minimum 1.5"} with input as sbom_of("1.4")
		with data.profile as {"sbom": {"required": true, "minSpecVersion": "1.5"}}
	sbom.deny == {"SBOM spec version 1.9 is below the minimum 1.10"} with input as sbom_of("1.9")
		with data.profile as {"sbom": {"minSpecVersion": "1.10"}}
}

test_malformed_spec_version if {
	sbom.deny == {`SBOM spec version "latest" is not a version number`} with input as sbom_of("latest")
		with data.profile as {"sbom": {"minSpecVersion": "1.5"}}
}

test_not_required if {
	count(sbom.deny) == 0 with input as {"artifact": {"sbom": null}} with data.profile as {"sbom": {"required": false}}
	count(sbom.deny) == 0 with input as {} with data.profile as {}
	count(sbom.deny) == 0 with input as sbom_of("1.2") with data.profile as {"sbom": {"required": true}}
}

test_numeric_spec_version_is_not_a_version_string if {
	sbom.deny == {"SBOM spec version 1.5 is not a version number"} with input as sbom_of(1.5)
		with data.profile as {"sbom": {"minSpecVersion": "1.5"}}
}
