package vouch.compliance.lib_test

import rego.v1

import data.vouch.compliance.lib

test_versions_compare_numerically if {
	lib.version_less("1.4", "1.5")
	lib.version_less("1.9", "1.10")
	lib.version_less("1.5", "1.5.1")
	lib.version_less("1", "1.1")
	lib.version_less("0.9.9", "1")
}

test_equal_or_higher_versions_are_not_less if {
	not lib.version_less("1.5", "1.5")
	not lib.version_less("1.5.0", "1.5")
	not lib.version_less("1.5", "1.5.0")
	not lib.version_less("1.10", "1.9")
	not lib.version_less("2", "1.99")
}

test_is_version if {
	lib.is_version("1.5")
	lib.is_version("10")
	not lib.is_version("1.x")
	not lib.is_version("v1.5")
	not lib.is_version("")
	not lib.is_version(1.5)
}

test_full_match_is_anchored if {
	lib.full_match("https://github.com/acme/.*", "https://github.com/acme/app")
	not lib.full_match("https://github.com/acme/.*", "evil https://github.com/acme/app")
	not lib.full_match("a|b", "ab")
	lib.full_match("a|b", "b")
	not lib.full_match("a", 1)
}

test_missing_parts_read_as_empty if {
	lib.as_object(null) == {}
	lib.as_array("x") == []
	lib.as_string(3) == ""
	lib.get(null, ["a", "b"], "d") == "d"
	lib.get({"a": {"b": 1}}, ["a", "b"], "d") == 1
}
