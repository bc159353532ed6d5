# Rules for model artifacts (data.profile.model), over input.artifact.model (ModelPack / ModelKit facts):
# licenses within an allowlist of SPDX ids, no denied weight formats, a declared source.
# They apply to models only, unless `required` makes every artifact the profile covers be a model.
package vouch.compliance.model

import rego.v1

import data.vouch.compliance.lib

rule := lib.as_object(lib.get(data.profile, ["model"], {}))

model := m if {
	m := lib.get(input.artifact, ["model"], null)
	is_object(m)
}

config := lib.as_object(object.get(model, "config", {}))

deny contains "the artifact is not a model (no ModelPack or ModelKit config was found)" if {
	rule.required == true
	not model
}

# Licenses.

allowed_names := [l | some l in lib.as_array(object.get(rule, "allowedLicenses", [])); is_string(l); l != ""]

allowed := {lower(trim_space(l)) | some l in allowed_names}

allowed_list := concat(", ", allowed_names)

licenses := [l | some l in lib.as_array(object.get(config, "licenses", [])); is_string(l); trim_space(l) != ""]

deny contains msg if {
	model
	count(allowed) > 0
	count(licenses) == 0
	msg := sprintf("the model declares no license (allowed: [%s])", [allowed_list])
}

deny contains msg if {
	model
	count(allowed) > 0
	some expression in licenses
	not expression_allowed(expression)
	msg := license_message(expression)
}

# The license ids an expression names (parentheses dropped, split on AND / OR; "X WITH exception" stays whole).
terms(expression) := [trim_space(t) |
	some t in regex.split(`(?i)\s+(?:AND|OR)\s+`, trim_space(replace(replace(expression, "(", " "), ")", " ")))
	trim_space(t) != ""
]

# An id is allowed when listed; "X WITH exception" also when X is (an exception only adds permissions).
term_allowed(t) if lower(trim_space(t)) in allowed

term_allowed(t) if {
	parts := regex.split(`(?i)\s+WITH\s+`, trim_space(t))
	count(parts) == 2
	lower(trim_space(parts[0])) in allowed
}

nested(expression) if contains(expression, "(")

nested(expression) if contains(expression, ")")

# Without parentheses AND binds tighter than OR, and one OR branch whose ids are all allowed suffices.
expression_allowed(expression) if {
	not nested(expression)
	some branch in regex.split(`(?i)\s+OR\s+`, trim_space(expression))
	every t in regex.split(`(?i)\s+AND\s+`, trim_space(branch)) {
		term_allowed(t)
	}
}

# With parentheses (not parsed, fail closed): every id named must be allowed.
expression_allowed(expression) if {
	nested(expression)
	count(terms(expression)) > 0
	every t in terms(expression) {
		term_allowed(t)
	}
}

license_message(expression) := sprintf("license %s is not in the allowed list [%s]", [expression, allowed_list]) if {
	count(terms(expression)) == 1
} else := sprintf("license expression %s is not covered by the allowed list [%s] (not allowed: %s)", [
	expression, allowed_list,
	concat(", ", sort({t | some t in terms(expression); not term_allowed(t)})),
])

# Weight formats.

denied_format_names := [f | some f in lib.as_array(object.get(rule, "deniedFormats", [])); is_string(f); f != ""]

denied_formats := {lower(f) | some f in denied_format_names}

# File name endings of a weight format (pickle: Python pickle, PyTorch checkpoints, joblib dumps).
format_endings := {"pickle": [".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib"]}

deny contains msg if {
	model
	format := lib.as_string(object.get(config, "format", ""))
	lower(format) in denied_formats
	msg := sprintf("model weight format %s is denied (denied formats: [%s])", [format, concat(", ", denied_format_names)])
}

# Endings refused because of a denied format.
format_denied_endings := {[ending, f] |
	some f in denied_formats
	some ending in object.get(format_endings, f, [])
}

format_ending_set := {e | some [e, _] in format_denied_endings}

# [ending, why] for every refused file name ending.
denied_endings contains [ending, sprintf("is in the denied format %s", [f])] if {
	some [ending, f] in format_denied_endings
}

denied_endings contains [ending, sprintf("has the denied file extension %s", [ending])] if {
	some e in lib.as_array(object.get(rule, "deniedFileExtensions", []))
	is_string(e)
	e != ""
	ending := lower(e)
	not ending in format_ending_set
}

deny contains msg if {
	model
	some layer in lib.as_array(object.get(model, "layers", []))
	is_object(layer)
	path := lib.as_string(object.get(layer, "path", ""))
	path != ""
	some [ending, why] in denied_endings
	endswith(lower(path), ending)
	msg := sprintf("model file %s (%s layer %s) %s", [path, lib.as_string(object.get(layer, "kind", "")), lib.as_string(object.get(layer, "digest", "")), why])
}

# Source.

source_url := u if {
	u := trim_space(lib.as_string(object.get(config, "sourceURL", "")))
	u != ""
} else := trim_space(lib.as_string(object.get(config, "sourceUrl", "")))

deny contains "the model config has no sourceURL" if {
	model
	rule.requireSourceUrl == true
	source_url == ""
}
