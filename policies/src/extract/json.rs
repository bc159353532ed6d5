//! Typed reads of an untrusted JSON object at fixed paths: wrong types and oversized lists are
//! [`ExtractError`]s naming the JSON pointer, never panics.

use serde_json::{Map, Value};

use super::{ExtractError, MAX_LIST_ENTRIES};

/// A JSON object.
pub(crate) type Object = Map<String, Value>;

/// The value at the RFC 6901 `pointer` in `root`, as `Value::pointer` finds it, without allocating for
/// segments that hold no escape (`~0`, `~1`): `Value::pointer` builds two strings per segment, and the
/// webhook looks up a few pointers in every review.
pub fn value_at<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(root);
    }
    let rest = pointer.strip_prefix('/')?;
    rest.split('/').try_fold(root, |target, segment| {
        let segment = unescape_pointer_segment(segment);
        match target {
            Value::Object(map) => map.get::<str>(&segment),
            Value::Array(list) => array_index(&segment).and_then(|i| list.get(i)),
            _ => None,
        }
    })
}

/// An array index segment as RFC 6901 writes one (`0`, or digits without a leading zero).
fn array_index(segment: &str) -> Option<usize> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if segment.len() > 1 && segment.starts_with('0') {
        return None;
    }
    segment.parse().ok()
}

/// The object at `pointer` (object segments only, unescaped names); `None` when a segment is absent or null.
pub(crate) fn walk<'a>(root: &'a Value, pointer: &str) -> Result<Option<&'a Object>, ExtractError> {
    let mut current = object_at(root, "")?;
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        path.push('/');
        path.push_str(segment);
        match current.get(segment) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => current = object_at(v, &path)?,
        }
    }
    Ok(Some(current))
}

/// Where a value is, for the error that names it: a JSON pointer, or a closure that writes one (a hot path
/// reads many fields and reports few errors, so it need not write a pointer per field read).
pub(crate) trait At {
    /// The pointer, written out.
    fn pointer(self) -> String;
}

impl At for &str {
    fn pointer(self) -> String {
        self.to_owned()
    }
}

impl At for &String {
    fn pointer(self) -> String {
        self.clone()
    }
}

impl<F: FnOnce() -> String> At for F {
    fn pointer(self) -> String {
        self()
    }
}

/// `v` as an object, or a wrong-type error at `at`.
pub(crate) fn object_at(v: &Value, at: impl At) -> Result<&Object, ExtractError> {
    v.as_object().ok_or_else(|| wrong(&at.pointer(), "an object", v))
}

/// An optional object field: absent or null is `None`.
pub(crate) fn optional_object(v: Option<&Value>, at: impl At) -> Result<Option<&Object>, ExtractError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => object_at(v, at).map(Some),
    }
}

/// An optional list field (absent or null is empty), at most [`MAX_LIST_ENTRIES`] long.
pub(crate) fn list(v: Option<&Value>, at: impl At) -> Result<&[Value], ExtractError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) if items.len() > MAX_LIST_ENTRIES => {
            Err(ExtractError::TooMany { pointer: at.pointer(), count: items.len(), max: MAX_LIST_ENTRIES })
        }
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(wrong(&at.pointer(), "an array", other)),
    }
}

/// A map field (absent or null is empty) with at most [`MAX_LIST_ENTRIES`] keys.
pub(crate) fn map(v: Option<&Value>, at: impl At) -> Result<Option<&Object>, ExtractError> {
    match v {
        Some(Value::Object(m)) if m.len() > MAX_LIST_ENTRIES => {
            Err(ExtractError::TooMany { pointer: at.pointer(), count: m.len(), max: MAX_LIST_ENTRIES })
        }
        _ => optional_object(v, at),
    }
}

/// A string field; absent, null or empty means "not set".
pub(crate) fn string_at(v: Option<&Value>, at: impl At) -> Result<Option<&str>, ExtractError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(&at.pointer(), "a string", other)),
    }
}

/// The entry's `name`, or `#<index>` when unnamed (mutating admission runs before validation); `at` is
/// where the entry is.
pub(crate) fn name_of(entry: &Object, at: impl At, index: usize) -> Result<String, ExtractError> {
    Ok(string_at(entry.get("name"), || at.pointer() + "/name")?
        .map_or_else(|| format!("#{index}"), |n| n.chars().take(253).collect()))
}

/// A wrong-type error at `pointer` (the root is written `/`).
pub(crate) fn wrong(pointer: &str, expected: &'static str, found: &Value) -> ExtractError {
    ExtractError::WrongType {
        pointer: if pointer.is_empty() { "/".into() } else { pointer.to_owned() },
        expected,
        found: type_name(found),
    }
}

/// "a string", "an object", ... for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One RFC 6901 reference token: `~` → `~0`, `/` → `~1`.
pub fn escape_pointer_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The name one RFC 6901 reference token stands for: `~1` → `/`, then `~0` → `~` (so `~01` is `~1`);
/// borrowed when the token holds no escape.
pub fn unescape_pointer_segment(segment: &str) -> std::borrow::Cow<'_, str> {
    if segment.contains('~') {
        segment.replace("~1", "/").replace("~0", "~").into()
    } else {
        segment.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointer_segments_are_escaped_per_rfc6901() {
        assert_eq!(escape_pointer_segment("vouch.dev/egress"), "vouch.dev~1egress");
        assert_eq!(escape_pointer_segment("a~b/c"), "a~0b~1c");
        let v = json!({"a~b/c": 1});
        assert_eq!(v.pointer(&format!("/{}", escape_pointer_segment("a~b/c"))), Some(&json!(1)));
    }

    #[test]
    fn maps_are_bounded() {
        let big: Object = (0..=MAX_LIST_ENTRIES).map(|i| (format!("k{i}"), json!("v"))).collect();
        let v = Value::Object(big);
        assert!(matches!(map(Some(&v), "/m"), Err(ExtractError::TooMany { .. })));
        assert!(map(None, "/m").unwrap().is_none());
    }

    #[test]
    fn value_at_finds_what_value_pointer_finds() {
        let v = json!({
            "a": {"b/c": [10, {"d~e": "x", "": "empty"}], "0": "zero", "01": "one"},
            "list": ["p", "q"],
            "~1": "tilde-one"
        });
        let pointers = [
            "",
            "/",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/d~0e",
            "/a/b~1c/1/",
            "/a/0",
            "/a/01",
            "/list/0",
            "/list/1",
            "/list/01",
            "/list/2",
            "/list/-",
            "/list/+1",
            "/list/ 1",
            "/~01",
            "/~1",
            "/a/b/c",
            "a",
            "/a/b~1c/1/d~e",
            "/missing/deeper",
            "/list/0/x",
        ];
        for p in pointers {
            assert_eq!(value_at(&v, p), v.pointer(p), "{p}");
        }
        assert_eq!(value_at(&v, "/a/b~1c/1/d~0e"), Some(&json!("x")));
        assert_eq!(value_at(&v, "/~01"), Some(&json!("tilde-one")));
    }
}
