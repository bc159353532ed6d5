use super::*;

const GOOD: &str = "apiVersion: kars.dev/v1alpha1\nkind: EgressAllowlist\nmetadata:\n  name: sandbox-foo\n  generation: 3\nspec:\n  endpoints:\n    - host: api.github.com\n      port: 443\n    - host: api.github.com\n      port: 8443\n    - host: telegram.org\n      port: 443\n      protocol: tcp\n";

fn parse(s: &str) -> Result<KarsAllowlist, EgressError> {
    KarsAllowlist::parse(s.as_bytes())
}

/// The rule a document breaks.
fn rule(s: &str) -> (CanonicalRule, String) {
    match parse(s) {
        Err(EgressError::NonCanonical { rule, line, detail }) => (rule, format!("line {line}: {detail}")),
        other => panic!("{s:?}: expected a canonical-form error, got {other:?}"),
    }
}

fn covers(l: &KarsAllowlist, e: &str) -> bool {
    l.covers(&e.parse().unwrap())
}

#[test]
fn the_canonical_document_parses_and_round_trips() {
    let l = parse(GOOD).unwrap();
    assert_eq!(l.name.as_deref(), Some("sandbox-foo"));
    assert_eq!(l.generation, 3);
    assert_eq!(l.endpoints.len(), 3);
    assert_eq!(l.endpoints[2].protocol.as_deref(), Some("tcp"));
    assert_eq!(l.to_canonical_yaml(), GOOD);
    // A leading document marker is allowed; metadata.name may be absent (kars's own signer omits it).
    let l = parse(&format!("---\n{}", GOOD.replace("  name: sandbox-foo\n", ""))).unwrap();
    assert_eq!((l.name.clone(), l.label()), (None, "generation 3".to_owned()));
    let empty = "apiVersion: kars.dev/v1alpha1\nkind: EgressAllowlist\nmetadata:\n  generation: 1\nspec:\n  endpoints: []\n";
    assert!(parse(empty).unwrap().endpoints.is_empty());
}

#[test]
fn hosts_match_by_parent_domain_and_ports_exactly() {
    let l = parse(GOOD).unwrap();
    assert!(covers(&l, "telegram.org:443"));
    assert!(covers(&l, "api.telegram.org:443"), "a subdomain of an allowed host");
    assert!(covers(&l, "a.b.telegram.org:443"), "at any depth");
    assert!(covers(&l, "*.telegram.org:443"));
    assert!(covers(&l, "**.telegram.org:443"));
    assert!(covers(&l, "API.Telegram.ORG.:443"), "case and a trailing dot do not matter");
    assert!(!covers(&l, "eviltelegram.org:443"), "a suffix is not a parent domain");
    assert!(!covers(&l, "telegram.org.evil.net:443"));
    assert!(!covers(&l, "telegram.org:80"), "ports match exactly");
    assert!(!covers(&l, "telegram.org"), "no port = every port");
    assert!(!covers(&l, "github.com:443"), "a parent is not covered by its child");
    assert!(covers(&l, "api.github.com:8443"));
    assert!(!covers(&l, "*.github.com:443"), "a wildcard above an allowed host");
    let ip = parse(
        &GOOD
            .replace("telegram.org", "tm.org")
            .replace("host: api.github.com\n      port: 443", "host: 10.1.2.3\n      port: 443")
            .replace("host: api.github.com\n      port: 8443", "host: 10.1.2.4\n      port: 443"),
    )
    .unwrap();
    assert!(covers(&ip, "10.1.2.3:443"));
    assert!(!covers(&ip, "10.1.2.0/24:443"), "a network is never covered");
    assert!(!covers(&ip, "10.1.2.5:443"));
}

#[test]
fn uncovered_names_endpoints_and_why() {
    let l = parse(GOOD).unwrap();
    let out = l.uncovered(&["api.telegram.org:443", "evil.example.net:443", "telegram.org", "https://x.y"]);
    let names: Vec<_> = out.iter().map(|u| u.endpoint.as_str()).collect();
    assert_eq!(names, ["evil.example.net:443", "telegram.org", "https://x.y"]);
    assert_eq!(out[0].reason, "not in egress allowlist sandbox-foo");
    assert!(out[1].reason.starts_with("no port, so every port"), "{}", out[1].reason);
}

#[test]
fn every_rule_of_the_canonical_format_is_enforced_and_named() {
    use CanonicalRule::*;
    let cases: Vec<(String, CanonicalRule)> = vec![
        (GOOD.replace('\n', "\r\n"), Encoding),
        (GOOD.trim_end().to_owned(), Encoding),
        (format!("{GOOD}\n"), Whitespace),
        (format!("\u{feff}{GOOD}"), Encoding),
        (GOOD.replace("  generation", "\tgeneration"), Whitespace),
        (GOOD.replace("  generation", "   generation"), Whitespace),
        (GOOD.replace("generation: 3", "generation: 3 "), Whitespace),
        (GOOD.replace("metadata:\n", "metadata:\n\n"), Whitespace),
        (format!("# signed\n{GOOD}"), BlockStyle),
        (GOOD.replace("port: 8443", "port: 8443 # alt"), BlockStyle),
        (format!("{GOOD}...\n"), BlockStyle),
        (
            GOOD.replace(
                "metadata:\n  name: sandbox-foo\n  generation: 3\n",
                "metadata: {name: sandbox-foo, generation: 3}\n",
            ),
            BlockStyle,
        ),
        (GOOD.replace("host: telegram.org", "host: &t telegram.org"), BlockStyle),
        (
            GOOD.replace(
                "apiVersion: kars.dev/v1alpha1\nkind: EgressAllowlist\n",
                "kind: EgressAllowlist\napiVersion: kars.dev/v1alpha1\n",
            ),
            Header,
        ),
        (GOOD.replace("kars.dev/v1alpha1", "kars.dev/v1"), Header),
        (GOOD.replace("kind: EgressAllowlist", "kind: ToolPolicy"), Header),
        (
            GOOD.replace("  name: sandbox-foo\n  generation: 3\n", "  generation: 3\n  name: sandbox-foo\n"),
            KeyOrder,
        ),
        (
            GOOD.replace(
                "metadata:\n  name: sandbox-foo\n  generation: 3\nspec:\n  endpoints:\n",
                "spec:\n  endpoints:\n",
            )
            .replace("      protocol: tcp\n", "      protocol: tcp\nmetadata:\n  generation: 3\n"),
            KeyOrder,
        ),
        (
            GOOD.replace(
                "    - host: api.github.com\n      port: 443\n",
                "    - port: 443\n      host: api.github.com\n",
            ),
            KeyOrder,
        ),
        (
            GOOD.replace("      port: 443\n      protocol: tcp\n", "      protocol: tcp\n      port: 443\n"),
            KeyOrder,
        ),
        (GOOD.replace("generation: 3", "generation: 03"), Scalars),
        (GOOD.replace("generation: 3", "generation: +3"), Scalars),
        (GOOD.replace("port: 8443", "port: 0x20fb"), Scalars),
        (GOOD.replace("host: telegram.org", "host: \"telegram.org\""), Scalars),
        (GOOD.replace("generation: 3", "generation: 0"), Generation),
        (GOOD.replace("  generation: 3\n", ""), Generation),
        (GOOD.replace("host: telegram.org", "host: Telegram.org"), Host),
        (GOOD.replace("host: telegram.org", "host: *.telegram.org"), Host),
        (GOOD.replace("host: telegram.org", "host: telegram.org."), Host),
        (GOOD.replace("host: telegram.org", "host: telegram..org"), Host),
        (GOOD.replace("host: telegram.org", "host: bücher.example"), Host),
        (GOOD.replace("host: telegram.org", "host: telegram_org"), Host),
        (GOOD.replace("port: 8443", "port: 70000"), Fields),
        (GOOD.replace("port: 8443", "port: 0"), Fields),
        (GOOD.replace("      protocol: tcp\n", "      protocol: tcp\n      methods: GET\n"), Fields),
        (GOOD.replace("  generation: 3\n", "  generation: 3\n  labels: x\n"), Fields),
        (format!("{GOOD}status: ok\n"), Fields),
        (GOOD.replace("name: sandbox-foo", "name: Sandbox Foo"), Fields),
        (
            GOOD.replace("    - host: api.github.com\n      port: 443\n", "").replace(
                "      protocol: tcp\n",
                "      protocol: tcp\n    - host: api.github.com\n      port: 443\n",
            ),
            ListOrder,
        ),
        (GOOD.replace("port: 8443", "port: 80"), ListOrder),
        (GOOD.replace("      port: 8443\n", "      port: 443\n"), ListOrder),
    ];
    for (doc, want) in cases {
        let (got, detail) = rule(&doc);
        assert_eq!(got, want, "{doc:?}: {detail}");
    }
    let e = parse(&GOOD.replace("      port: 8443\n", "      port: 443\n")).unwrap_err().to_string();
    assert_eq!(
        e,
        "kars egress allowlist is not canonical (rule §0.6 list ordering of kars's \
         policy-canonical-format): line 10: endpoint api.github.com:443 is listed twice"
    );
}

#[test]
fn scalars_a_yaml_parser_reads_otherwise_are_refused() {
    for host in ["null", "true", "123", "1e5"] {
        let doc =
            GOOD.replace("host: telegram.org", &format!("host: {host}")).replace("      protocol: tcp\n", "");
        // Sorted where needed: these all sort before api.github.com.
        let doc = doc.replace(
            "    - host: api.github.com\n      port: 443\n    - host: api.github.com\n      port: 8443\n",
            "",
        );
        let (got, detail) = rule(&doc);
        assert_eq!(got, CanonicalRule::Scalars, "{host}: {detail}");
    }
}

#[test]
fn size_and_entries_are_bounded() {
    let big = vec![b'a'; MAX_DOCUMENT_BYTES + 1];
    assert!(matches!(KarsAllowlist::parse(&big), Err(EgressError::TooLarge { .. })));
    let (rule, _) = match KarsAllowlist::parse(b"apiVersion: \xff\n") {
        Err(EgressError::NonCanonical { rule, line, detail }) => (rule, (line, detail)),
        other => panic!("{other:?}"),
    };
    assert_eq!(rule, CanonicalRule::Encoding);
}
