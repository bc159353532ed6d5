//! Kubernetes label selector semantics (`matchLabels` and `matchExpressions`, all must hold).

use std::collections::BTreeMap;

use crate::crd::{LabelSelector, LabelSelectorOperator};

/// Problems with a selector (In/NotIn without values, Exists/DoesNotExist with values, empty keys).
pub fn validate(selector: &LabelSelector) -> Vec<String> {
    let mut problems = Vec::new();
    for k in selector.match_labels.keys() {
        if k.is_empty() {
            problems.push("matchLabels has an empty key".to_owned());
        }
    }
    for (i, e) in selector.match_expressions.iter().enumerate() {
        if e.key.is_empty() {
            problems.push(format!("matchExpressions[{i}] has an empty key"));
        }
        match e.operator {
            LabelSelectorOperator::In | LabelSelectorOperator::NotIn if e.values.is_empty() => {
                problems.push(format!("matchExpressions[{i}] ({:?}) needs values", e.operator));
            }
            LabelSelectorOperator::Exists | LabelSelectorOperator::DoesNotExist if !e.values.is_empty() => {
                problems.push(format!("matchExpressions[{i}] ({:?}) must not have values", e.operator));
            }
            _ => {}
        }
    }
    problems
}

/// Labels as a selector reads them: a key's value, if the key is there.
pub trait Labels {
    /// The value of `key`.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// Whether `labels` satisfy `selector`. An empty selector matches everything (as in Kubernetes).
pub fn matches(selector: &LabelSelector, labels: &impl Labels) -> bool {
    let labels_ok = selector.match_labels.iter().all(|(k, v)| labels.label(k) == Some(v.as_str()));
    let listed = |values: &[String], v: &str| values.iter().any(|listed| listed == v);
    labels_ok
        && selector.match_expressions.iter().all(|e| {
            let value = labels.label(&e.key);
            match e.operator {
                LabelSelectorOperator::In => value.is_some_and(|v| listed(&e.values, v)),
                LabelSelectorOperator::NotIn => value.is_none_or(|v| !listed(&e.values, v)),
                LabelSelectorOperator::Exists => value.is_some(),
                LabelSelectorOperator::DoesNotExist => value.is_none(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn expr(key: &str, operator: LabelSelectorOperator, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(matches(&LabelSelector::default(), &labels(&[])));
        assert!(matches(&LabelSelector::default(), &labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_exact_values() {
        let s = LabelSelector { match_labels: labels(&[("env", "prod")]), ..Default::default() };
        assert!(matches(&s, &labels(&[("env", "prod"), ("x", "y")])));
        assert!(!matches(&s, &labels(&[("env", "dev")])));
        assert!(!matches(&s, &labels(&[])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        use LabelSelectorOperator::*;
        let sel = |e| LabelSelector { match_expressions: vec![e], ..Default::default() };
        let prod = labels(&[("env", "prod")]);
        let none = labels(&[]);
        assert!(matches(&sel(expr("env", In, &["prod", "stage"])), &prod));
        assert!(!matches(&sel(expr("env", In, &["dev"])), &prod));
        assert!(!matches(&sel(expr("env", In, &["prod"])), &none), "In needs the label");
        assert!(matches(&sel(expr("env", NotIn, &["dev"])), &prod));
        assert!(matches(&sel(expr("env", NotIn, &["dev"])), &none), "NotIn holds when the label is absent");
        assert!(!matches(&sel(expr("env", NotIn, &["prod"])), &prod));
        assert!(matches(&sel(expr("env", Exists, &[])), &prod));
        assert!(!matches(&sel(expr("env", Exists, &[])), &none));
        assert!(matches(&sel(expr("env", DoesNotExist, &[])), &none));
        assert!(!matches(&sel(expr("env", DoesNotExist, &[])), &prod));
    }

    #[test]
    fn all_parts_must_hold() {
        let s = LabelSelector {
            match_labels: labels(&[("team", "a")]),
            match_expressions: vec![expr("env", LabelSelectorOperator::In, &["prod"])],
        };
        assert!(matches(&s, &labels(&[("team", "a"), ("env", "prod")])));
        assert!(!matches(&s, &labels(&[("team", "a"), ("env", "dev")])));
        assert!(!matches(&s, &labels(&[("team", "b"), ("env", "prod")])));
    }

    #[test]
    fn malformed_expressions_are_reported() {
        let s = LabelSelector {
            match_expressions: vec![
                expr("a", LabelSelectorOperator::In, &[]),
                expr("b", LabelSelectorOperator::Exists, &["x"]),
                expr("", LabelSelectorOperator::Exists, &[]),
            ],
            ..Default::default()
        };
        let p = validate(&s);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("matchExpressions[0] (In) needs values"));
    }
}
