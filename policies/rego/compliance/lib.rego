# Helpers shared by vouch's compliance modules; user modules may import them too
# (`import data.vouch.compliance.lib`).
package vouch.compliance.lib

import rego.v1

# The value if it is an object, else an empty object (missing or null parts of the input read as empty).
as_object(x) := x if is_object(x)

else := {}

# The value if it is an array, else an empty array.
as_array(x) := x if is_array(x)

else := []

# The value if it is a string, else "".
as_string(x) := x if is_string(x)

else := ""

# The value at `path` below `x`, or `default_value` when any step is missing or not an object.
get(x, path, default_value) := object.get(as_object(x), path, default_value)

# Whether the whole of `s` matches the regular expression `pattern`.
full_match(pattern, s) if {
	is_string(s)
	regex.match(sprintf("^(?:%s)$", [pattern]), s)
}

# Whether `v` is a dotted numeric version ("1.5", "1.10.2").
is_version(v) if {
	is_string(v)
	regex.match(`^[0-9]+(\.[0-9]+)*$`, v)
}

version_parts(v) := [to_number(p) | some p in split(v, ".")]

part(parts, i) := parts[i] if i < count(parts)

else := 0

# Both versions' parts padded with zeros to the same length.
padded(a, b) := [pa, pb] if {
	va := version_parts(a)
	vb := version_parts(b)
	n := max([count(va), count(vb)])
	pa := [part(va, i) | some i in numbers.range(0, n - 1)]
	pb := [part(vb, i) | some i in numbers.range(0, n - 1)]
}

# Whether version `a` is lower than version `b`, numerically part by part ("1.9" < "1.10", "1.5" == "1.5.0").
version_less(a, b) if {
	[pa, pb] := padded(a, b)
	some i in numbers.range(0, count(pa) - 1)
	pa[i] < pb[i]
	array.slice(pa, 0, i) == array.slice(pb, 0, i)
}

# Always true: vouch evaluates it once at compile time so that every module is analysed up front.
ready := true
