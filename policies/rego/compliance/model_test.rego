package vouch.compliance.model_test

import rego.v1

import data.vouch.compliance.model

profile := {"model": {
	"allowedLicenses": ["Apache-2.0", "MIT"],
	"deniedFormats": ["pickle"],
	"requireSourceUrl": true,
}}

weights := {
	"kind": "weight", "mediaType": "application/vnd.cncf.model.weight.v1.raw",
	"digest": "sha256:aa", "size": 10, "path": "model.safetensors", "archive": "raw",
}

good := {"artifact": {"model": {
	"format": "modelPack",
	"manifestAnnotations": {},
	"config": {
		"name": "tiny", "licenses": ["Apache-2.0"], "sourceURL": "https://github.com/acme/tiny",
		"datasetsURL": [], "format": "safetensors",
	},
	"layers": [weights],
}}}

# The good model with config fields replaced.
with_config(changes) := object.union(good, {"artifact": {"model": {"config": changes}}})

with_licenses(l) := with_config({"licenses": l})

test_compliant if {
	count(model.deny) == 0 with input as good with data.profile as profile
}

test_rules_apply_to_models_only if {
	image := {"artifact": {"model": null, "manifest": {"annotations": {}}}}
	count(model.deny) == 0 with input as image with data.profile as profile
	count(model.deny) == 0 with input as {} with data.profile as profile
}

test_required_model if {
	model.deny == {"the artifact is not a model (no ModelPack or ModelKit config was found)"} with input as {"artifact": {}}
		with data.profile as {"model": {"required": true}}
	count(model.deny) == 0 with input as good with data.profile as {"model": {"required": true}}
}

test_license_outside_the_list if {
	model.deny == {"license GPL-3.0 is not in the allowed list [Apache-2.0, MIT]"} with input as with_licenses(["GPL-3.0"])
		with data.profile as profile
}

test_every_license_must_be_allowed if {
	model.deny == {"license GPL-3.0 is not in the allowed list [Apache-2.0, MIT]"} with input as with_licenses(["MIT", "GPL-3.0"])
		with data.profile as profile
}

test_license_ids_are_case_insensitive if {
	count(model.deny) == 0 with input as with_licenses(["apache-2.0", "mit"]) with data.profile as profile
}

test_or_needs_one_allowed_branch if {
	count(model.deny) == 0 with input as with_licenses(["GPL-3.0 OR MIT"]) with data.profile as profile
	count(model.deny) == 0 with input as with_licenses(["GPL-3.0 or MIT"]) with data.profile as profile
	model.deny == {"license expression GPL-3.0 OR LGPL-2.1 is not covered by the allowed list [Apache-2.0, MIT] (not allowed: GPL-3.0, LGPL-2.1)"} with input as with_licenses(["GPL-3.0 OR LGPL-2.1"])
		with data.profile as profile
}

test_and_needs_every_id_allowed if {
	count(model.deny) == 0 with input as with_licenses(["MIT AND Apache-2.0"]) with data.profile as profile
	model.deny == {"license expression MIT AND GPL-3.0 is not covered by the allowed list [Apache-2.0, MIT] (not allowed: GPL-3.0)"} with input as with_licenses(["MIT AND GPL-3.0"])
		with data.profile as profile
}

test_and_binds_tighter_than_or if {
	# (GPL-3.0 AND CC-BY-NC-4.0) OR MIT: the MIT branch is allowed.
	count(model.deny) == 0 with input as with_licenses(["GPL-3.0 AND CC-BY-NC-4.0 OR MIT"]) with data.profile as profile

	# MIT OR (Apache-2.0 AND GPL-3.0) without parentheses is MIT OR ..., allowed.
	count(model.deny) == 0 with input as with_licenses(["MIT OR Apache-2.0 AND GPL-3.0"]) with data.profile as profile
}

test_parentheses_require_every_id if {
	# Not parsed: fail closed, although MIT alone would satisfy it.
	model.deny == {"license expression (GPL-3.0 OR MIT) is not covered by the allowed list [Apache-2.0, MIT] (not allowed: GPL-3.0)"} with input as with_licenses(["(GPL-3.0 OR MIT)"])
		with data.profile as profile
	count(model.deny) == 0 with input as with_licenses(["(MIT OR Apache-2.0) AND MIT"]) with data.profile as profile
}

test_with_exception_follows_its_license if {
	count(model.deny) == 0 with input as with_licenses(["Apache-2.0 WITH LLVM-exception"]) with data.profile as profile
	model.deny == {"license GPL-2.0-only WITH Classpath-exception-2.0 is not in the allowed list [Apache-2.0, MIT]"} with input as with_licenses(["GPL-2.0-only WITH Classpath-exception-2.0"])
		with data.profile as profile
}

test_a_model_without_license if {
	model.deny == {"the model declares no license (allowed: [Apache-2.0, MIT])"} with input as with_licenses([])
		with data.profile as profile
	model.deny == {"the model declares no license (allowed: [Apache-2.0, MIT])"} with input as with_licenses(["  "])
		with data.profile as profile
	model.deny == {"the model declares no license (allowed: [Apache-2.0, MIT])"} with input as with_licenses(null)
		with data.profile as profile
}

test_pickle_format_is_denied if {
	model.deny == {"model weight format Pickle is denied (denied formats: [pickle])"} with input as with_config({"format": "Pickle"})
		with data.profile as profile
}

test_pickle_files_are_denied if {
	pt := object.union(weights, {"path": "weights/pytorch_model.BIN", "digest": "sha256:bb"})
	bad := object.union(good, {"artifact": {"model": {"layers": [weights, pt]}}})
	model.deny == {"model file weights/pytorch_model.BIN (weight layer sha256:bb) is in the denied format pickle"} with input as bad
		with data.profile as profile
}

test_denied_file_extensions if {
	p := {"model": {"deniedFileExtensions": [".onnx", ".pkl"], "deniedFormats": ["pickle"]}}
	onnx := object.union(weights, {"path": "m.onnx"})
	pkl := object.union(weights, {"path": "m.pkl", "kind": "code"})
	bad := object.union(good, {"artifact": {"model": {"layers": [onnx, pkl]}}})

	# .pkl is reported once, as the pickle format.
	model.deny == {
		"model file m.onnx (weight layer sha256:aa) has the denied file extension .onnx",
		"model file m.pkl (code layer sha256:aa) is in the denied format pickle",
	} with input as bad
		with data.profile as p
}

test_source_url_required if {
	msg := {"the model config has no sourceURL"}
	model.deny == msg with input as with_config({"sourceURL": null}) with data.profile as profile
	model.deny == msg with input as with_config({"sourceURL": " "}) with data.profile as profile
	count(model.deny) == 0 with input as with_config({"sourceURL": null}) with data.profile as {"model": {}}

	# The camel-case spelling is read too.
	count(model.deny) == 0 with input as with_config({"sourceURL": null, "sourceUrl": "https://x"}) with data.profile as profile
}

test_no_rules_no_violations if {
	count(model.deny) == 0 with input as good with data.profile as {}
}
