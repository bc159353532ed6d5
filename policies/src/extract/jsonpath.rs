//! JSONPath (RFC 9535, via jsonpath-rust) compiled once, evaluated with exact locations: every match is
//! returned with the RFC 6901 JSON pointer a pin patches, checked to lead to the very value matched.

use std::fmt;

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;

use super::json::escape_pointer_segment;
use super::{ExtractError, MAX_LIST_ENTRIES};

/// Longest JSONPath expression accepted.
const MAX_PATH_LEN: usize = 1024;

/// A parsed JSONPath expression.
///
/// ```
/// use serde_json::json;
/// use vouch_policies::extract::CompiledPath;
/// let path = CompiledPath::new("$.spec.adapters[*].ref").unwrap();
/// let object = json!({"spec": {"adapters": [{"ref": "oci://ghcr.io/acme/lora:1"}]}});
/// let hits = path.query(&object).unwrap();
/// assert_eq!(hits[0].pointer, "/spec/adapters/0/ref");
/// assert_eq!(hits[0].value, "oci://ghcr.io/acme/lora:1");
/// ```
#[derive(Clone)]
pub struct CompiledPath {
    text: String,
    query: JpQuery,
}

impl fmt::Debug for CompiledPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompiledPath({:?})", self.text)
    }
}

/// One match: where it is and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    /// RFC 6901 pointer of the matched value.
    pub pointer: String,
    /// The matched value.
    pub value: &'a Value,
}

impl CompiledPath {
    /// Parse `text`. Descendant segments (`..`) are refused: they walk the whole object, to any depth.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.len() > MAX_PATH_LEN {
            return Err(format!("JSONPath longer than {MAX_PATH_LEN} characters"));
        }
        if text.contains("..") {
            return Err(format!(
                "JSONPath {text:?}: descendant segments (..) walk the whole object; name the path \
                 (wildcards [*] are fine)"
            ));
        }
        let query = parse_json_path(text).map_err(|e| format!("JSONPath {text:?} does not parse: {e}"))?;
        Ok(Self { text: text.to_owned(), query })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Every match in `root` (at most [`MAX_LIST_ENTRIES`]) with its exact pointer.
    pub fn query<'a>(&self, root: &'a Value) -> Result<Vec<Hit<'a>>, ExtractError> {
        let err = |reason: String| ExtractError::JsonPath { path: self.text.clone(), reason };
        let found = js_path_process(&self.query, root).map_err(|e| err(e.to_string()))?;
        if found.len() > MAX_LIST_ENTRIES {
            return Err(ExtractError::TooMany {
                pointer: self.text.clone(),
                count: found.len(),
                max: MAX_LIST_ENTRIES,
            });
        }
        found
            .into_iter()
            .map(|r| {
                let pointer = normalized_path_to_pointer(&r.path)
                    .ok_or_else(|| err(format!("match at {:?} has no JSON pointer", r.path)))?;
                // Pins patch this pointer: it must lead to the value matched, not merely an equal one.
                match root.pointer(&pointer) {
                    Some(v) if std::ptr::eq(v, r.val) => Ok(Hit { pointer, value: r.val }),
                    _ => Err(err(format!("match at {:?} is not at {pointer:?}", r.path))),
                }
            })
            .collect()
    }
}

/// `$['spec']['models'][0]['uri']` (an RFC 9535 normalized path) → `/spec/models/0/uri`.
pub fn normalized_path_to_pointer(path: &str) -> Option<String> {
    let mut rest = path.strip_prefix('$')?;
    let mut pointer = String::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix('[')?;
        if let Some(quoted) = rest.strip_prefix('\'') {
            let (name, after) = unquote(quoted)?;
            pointer.push('/');
            pointer.push_str(&escape_pointer_segment(&name));
            rest = after.strip_prefix(']')?;
        } else {
            let end = rest.find(']')?;
            let index = rest.get(..end)?;
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            pointer.push('/');
            pointer.push_str(index);
            rest = rest.get(end + 1..)?;
        }
    }
    Some(pointer)
}

/// A single-quoted name up to its closing quote, with the escapes jsonpath-rust writes; the rest after it.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => return Some((out, s.get(i + 1..)?)),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'b' => out.push('\u{0008}'),
                    'f' => out.push('\u{000C}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    '\'' | '\\' | '/' | '"' => out.push(e),
                    'u' => {
                        let mut hex = String::new();
                        for _ in 0..4 {
                            hex.push(chars.next()?.1);
                        }
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalized_paths_become_pointers() {
        assert_eq!(normalized_path_to_pointer("$").unwrap(), "");
        assert_eq!(
            normalized_path_to_pointer("$['spec']['models'][10]['uri']").unwrap(),
            "/spec/models/10/uri"
        );
        assert_eq!(normalized_path_to_pointer(r"$['a/b']['c~d']['it\'s']").unwrap(), "/a~1b/c~0d/it's");
        assert_eq!(normalized_path_to_pointer(r"$['tab\there']").unwrap(), "/tab\there");
        assert_eq!(normalized_path_to_pointer(r"$['\u0001']").unwrap(), "/\u{1}");
        assert!(normalized_path_to_pointer("$['open").is_none());
        assert!(normalized_path_to_pointer("$[-1]").is_none());
        assert!(normalized_path_to_pointer("spec").is_none());
    }

    #[test]
    fn matches_carry_exact_pointers_even_for_awkward_keys() {
        let v = json!({"spec": {"models": [
            {"uri": "oci://a"},
            {"uri": "oci://b"}
        ], "weird/key~": {"it's": "x"}}});
        let p = CompiledPath::new("$.spec.models[*].uri").unwrap();
        let hits = p.query(&v).unwrap();
        assert_eq!(
            hits.iter().map(|h| (h.pointer.as_str(), h.value)).collect::<Vec<_>>(),
            vec![("/spec/models/0/uri", &json!("oci://a")), ("/spec/models/1/uri", &json!("oci://b"))]
        );
        let p = CompiledPath::new("$.spec['weird/key~'][*]").unwrap();
        let hits = p.query(&v).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].pointer, "/spec/weird~1key~0/it's");
        assert_eq!(v.pointer(&hits[0].pointer), Some(&json!("x")));
    }

    #[test]
    fn filters_work_and_absent_paths_match_nothing() {
        let v = json!({"spec": {"sources": [{"type": "hf", "ref": "x"}, {"type": "oci", "ref": "y"}]}});
        let p = CompiledPath::new("$.spec.sources[?@.type == 'oci'].ref").unwrap();
        let hits = p.query(&v).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].pointer, "/spec/sources/1/ref");
        assert!(CompiledPath::new("$.spec.nothing.here").unwrap().query(&v).unwrap().is_empty());
    }

    #[test]
    fn descendant_segments_and_garbage_are_refused() {
        assert!(CompiledPath::new("$..uri").unwrap_err().contains("descendant"));
        assert!(CompiledPath::new("$.spec[").is_err());
        assert!(CompiledPath::new(&format!("$.{}", "a".repeat(2000))).is_err());
    }

    #[test]
    fn odd_but_valid_expressions_on_odd_objects_do_not_panic() {
        let v =
            json!({"a": [1, "x", null, {"b": []}, [[]], -0.0, 1e308], "s": "text", "n": {"": {"/": "k"}}});
        for path in [
            "$.a[::0]",
            "$.a[-1]",
            "$.a[::-1]",
            "$.a[100:-100]",
            "$.a[?length(@) > 0]",
            "$.a[?match(@, '(a+)+$')]",
            "$.a[?search(@, '.*')]",
            "$.a[?@.b]",
            "$.a[?count(@.*) == 0]",
            "$.s[0]",
            "$.n[''][*]",
            "$.n['']['/']",
            "$.a[?@ == $.s]",
        ] {
            let p = CompiledPath::new(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            for hit in p.query(&v).unwrap_or_default() {
                assert!(std::ptr::eq(v.pointer(&hit.pointer).unwrap(), hit.value), "{path}");
            }
        }
        let hits = CompiledPath::new("$.n['']['/']").unwrap().query(&v).unwrap();
        assert_eq!(hits[0].pointer, "/n//~1", "an empty key is an empty reference token");
    }

    #[test]
    fn too_many_matches_are_an_error() {
        let many: Vec<Value> = (0..=MAX_LIST_ENTRIES).map(|i| json!(format!("r{i}"))).collect();
        let v = json!({"spec": {"refs": many}});
        let e = CompiledPath::new("$.spec.refs[*]").unwrap().query(&v).unwrap_err();
        assert!(matches!(e, ExtractError::TooMany { .. }), "{e}");
    }
}
