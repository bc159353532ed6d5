use super::*;

const NOW: &str = "2026-01-01T12:00:00Z";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW).unwrap().with_timezone(&Utc)
}

fn minutes_ago(minutes: i64) -> String {
    rfc3339(now() - chrono::Duration::minutes(minutes))
}

fn entry(updated: String, passed: u64) -> ReplicaCounts {
    ReplicaCounts {
        since: "2026-01-01T00:00:00Z".into(),
        updated,
        counts: PolicyCounts { passed, failed: 0, errors: 0 },
    }
}

/// Resync every minute, heartbeat every 5 minutes, expiry after 15.
fn config() -> WatchConfig {
    WatchConfig::default()
}

#[test]
fn own_entry_is_written_when_missing_changed_or_due_for_a_heartbeat() {
    let mine = entry(NOW.into(), 3);
    let written = |current: BTreeMap<String, ReplicaCounts>| {
        replica_counts_patch(&current, "a", mine.clone(), now(), &config())
    };
    let only_mine = BTreeMap::from([("a".to_owned(), Some(mine.clone()))]);
    assert_eq!(written(BTreeMap::new()), only_mine, "missing");
    assert_eq!(
        written(BTreeMap::from([("a".into(), entry(minutes_ago(1), 2))])),
        only_mine,
        "counts changed"
    );
    let mut restarted = entry(minutes_ago(1), 3);
    restarted.since = "2025-12-31T00:00:00Z".into();
    assert_eq!(written(BTreeMap::from([("a".into(), restarted)])), only_mine, "since changed");
    assert_eq!(written(BTreeMap::from([("a".into(), entry(minutes_ago(5), 3))])), only_mine, "heartbeat due");
    assert!(written(BTreeMap::from([("a".into(), entry(minutes_ago(4), 3))])).is_empty(), "up to date");
}

#[test]
fn other_replicas_entries_are_removed_only_once_expired() {
    let current = BTreeMap::from([
        ("a".to_owned(), entry(minutes_ago(1), 3)),
        ("fresh".to_owned(), entry(minutes_ago(14), 1)),
        ("ahead".to_owned(), entry(rfc3339(now() + chrono::Duration::minutes(2)), 1)),
        ("expired".to_owned(), entry(minutes_ago(16), 1)),
        ("garbled".to_owned(), entry("yesterday".into(), 1)),
    ]);
    let patch = replica_counts_patch(&current, "a", entry(NOW.into(), 3), now(), &config());
    let removed: Vec<&str> =
        patch.iter().filter(|(_, e)| e.is_none()).map(|(name, _)| name.as_str()).collect();
    assert_eq!(removed, ["expired", "garbled"]);
    assert!(!patch.contains_key("a"), "its own entry was up to date");
    assert!(!patch.contains_key("fresh") && !patch.contains_key("ahead"), "left alone");
}

#[test]
fn expiry_is_at_least_two_heartbeats_and_a_resync() {
    let config = WatchConfig { counts_expiry: Duration::from_secs(1), ..config() };
    assert_eq!(config.effective_expiry(), Duration::from_secs(11 * 60));
    assert_eq!(WatchConfig::default().effective_expiry(), Duration::from_secs(15 * 60));
}

#[test]
fn a_status_patch_that_removes_entries_is_guarded_by_the_resource_version() {
    let patch = PolicyStatusPatch {
        observed_generation: Some(2),
        conditions: vec![Condition::ready(Some(2), &[], NOW)],
        replica_counts: BTreeMap::from([
            ("a".to_owned(), Some(entry(NOW.into(), 3))),
            ("gone".to_owned(), None),
        ]),
        resource_version: Some("41".into()),
    };
    let json = patch.to_json();
    assert_eq!(json["metadata"]["resourceVersion"], "41");
    assert_eq!(json["status"]["replicaCounts"]["gone"], serde_json::Value::Null);
    assert_eq!(json["status"]["replicaCounts"]["a"]["passed"], 3);
    assert_eq!(json["status"]["observedGeneration"], 2);
    let json = patch.without_removals().to_json();
    assert!(json.get("metadata").is_none(), "{json}");
    assert!(json["status"]["replicaCounts"].get("gone").is_none(), "{json}");
}

fn pass_of(policy: &str) -> vouch_policies::Finding {
    vouch_policies::Finding {
        policy: policy.into(),
        policy_namespace: None,
        mode: vouch_policies::crd::Mode::Enforce,
        requirement: "signature".into(),
        artifact: vouch_policies::ArtifactLocation {
            kind: vouch_policies::ArtifactKind::Container,
            name: "app".into(),
            pointer: "/spec/containers/0/image".into(),
        },
        reference: "r/a:1".into(),
        digest: None,
        result: vouch_policies::FindingResult::Pass,
        reason: "signed".into(),
        signer: None,
        rekor_log_index: None,
        sbom_digest: None,
    }
}

#[test]
fn a_new_object_under_a_known_name_counts_from_zero_again() {
    let counters = PolicyCounters::default();
    let passed = |c: &PolicyCounters| c.get(None, "p").passed;
    let mut since = InForceSince::default();
    let key = (None, "p".to_owned());
    assert_eq!(since.since(&key, Some("u1"), "t1", &counters), "t1");
    counters.add(&[pass_of("p"), pass_of("p")]);
    assert_eq!(since.since(&key, Some("u1"), "t2", &counters), "t1", "the same object keeps its time");
    assert_eq!(passed(&counters), 2, "and its counts");
    assert_eq!(since.since(&key, Some("u2"), "t3", &counters), "t3", "recreated");
    assert_eq!(passed(&counters), 0, "recreated: counted from 0");
    counters.add(&[pass_of("p")]);
    since.retain(&BTreeSet::new(), &counters);
    assert_eq!(passed(&counters), 0, "deleted: forgotten");
    assert_eq!(since.since(&key, Some("u2"), "t4", &counters), "t4", "deleted, then seen again");
}
