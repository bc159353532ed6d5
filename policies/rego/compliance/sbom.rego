# The SBOM requirement (data.profile.sbom): a verified CycloneDX SBOM is present when `required` or
# `minSpecVersion` is set, and its specVersion is at least minSpecVersion (compared numerically).
package vouch.compliance.sbom

import rego.v1

import data.vouch.compliance.lib

rule := lib.as_object(lib.get(data.profile, ["sbom"], {}))

minimum := lib.as_string(object.get(rule, "minSpecVersion", ""))

required if rule.required == true

required if minimum != ""

sbom := s if {
	s := lib.get(input.artifact, ["sbom"], null)
	is_object(s)
}

deny contains "a verified SBOM is required but none was found" if {
	required
	not sbom
}

deny contains msg if {
	minimum != ""
	v := object.get(sbom, "specVersion", null)
	not lib.is_version(v)
	msg := sprintf("SBOM spec version %s is not a version number", [json.marshal(v)])
}

deny contains msg if {
	minimum != ""
	v := sbom.specVersion
	lib.is_version(v)
	lib.version_less(v, minimum)
	msg := sprintf("SBOM spec version %s is below the minimum %s", [v, minimum])
}
