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
        let segment: std::borrow::Cow<'_, str> = if segment.contains('~') {
            segment.replace("~1", "/").replace("~0", "~").into()
        } else {
            segment.into()
        };
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

/// `v` as an object, or a wrong-type error at `pointer`.
pub(crate) fn object_at<'a>(v: &'a Value, pointer: &str) -> Result<&'a Object, ExtractError> {
    v.as_object().ok_or_else(|| wrong(pointer, "an object", v))
}

/// An optional object field: absent or null is `None`.
pub(crate) fn optional_object<'a>(
    v: Option<&'a Value>,
    pointer: &str,
) -> Result<Option<&'a Object>, ExtractError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => object_at(v, pointer).map(Some),
    }
}

/// An optional list field (absent or null is empty), at most [`MAX_LIST_ENTRIES`] long.
pub(crate) fn list<'a>(v: Option<&'a Value>, pointer: &str) -> Result<&'a [Value], ExtractError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) if items.len() > MAX_LIST_ENTRIES => Err(ExtractError::TooMany {
            pointer: pointer.to_owned(),
            count: items.len(),
            max: MAX_LIST_ENTRIES,
        }),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(wrong(pointer, "an array", other)),
    }
}

/// A map field (absent or null is empty) with at most [`MAX_LIST_ENTRIES`] keys.
pub(crate) fn map<'a>(v: Option<&'a Value>, pointer: &str) -> Result<Option<&'a Object>, ExtractError> {
    let Some(m) = optional_object(v, pointer)? else {
        return Ok(None);
    };
    if m.len() > MAX_LIST_ENTRIES {
        return Err(ExtractError::TooMany {
            pointer: pointer.to_owned(),
            count: m.len(),
            max: MAX_LIST_ENTRIES,
        });
    }
    Ok(Some(m))
}

/// A string field; absent, null or empty means "not set".
pub(crate) fn string_at<'a>(v: Option<&'a Value>, pointer: &str) -> Result<Option<&'a str>, ExtractError> {
    string_or_else(v, || pointer.to_owned())
}

/// [`string_at`] with the pointer written only for the error (a hot path names many fields).
pub(crate) fn string_or_else(
    v: Option<&Value>,
    pointer: impl FnOnce() -> String,
) -> Result<Option<&str>, ExtractError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(&pointer(), "a string", other)),
    }
}

/// [`object_at`] with the pointer written only for the error.
pub(crate) fn object_or_else(v: &Value, pointer: impl FnOnce() -> String) -> Result<&Object, ExtractError> {
    v.as_object().ok_or_else(|| wrong(&pointer(), "an object", v))
}

/// The entry's `name`, or `#<index>` when unnamed (mutating admission runs before validation).
pub(crate) fn name_of(entry: &Object, pointer: &str, index: usize) -> Result<String, ExtractError> {
    name_or_else(entry, || pointer.to_owned(), index)
}

/// [`name_of`] with the entry's pointer written only for the error.
pub(crate) fn name_or_else(
    entry: &Object,
    pointer: impl FnOnce() -> String,
    index: usize,
) -> Result<String, ExtractError> {
    Ok(string_or_else(entry.get("name"), || pointer() + "/name")?
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
