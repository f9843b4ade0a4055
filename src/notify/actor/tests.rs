use super::*;

fn alert(name: &str, starts: i64, ends: i64) -> Alert {
    Alert {
        labels: Labels::from_pairs([("alertname", name), ("instance", "web-1")]),
        annotations: Labels::from_pairs([("summary", "busy")]),
        starts_at_ms: starts,
        ends_at_ms: ends,
        generator_url: "http://web-1/graph".into(),
        updated_at_ms: starts,
    }
}

#[test]
fn alerts_log_and_silences_come_back_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let alerts = vec![alert("A", 1_000, 9_000), alert("B", 2_000, 3_000)];
    let saved = alerts.clone();
    store
        .call_blocking(move |c| save_alerts(c, &saved))
        .expect("alerts");
    let entry = LogEntry {
        firing: [1u64, 0xffff_ffff_ffff_ffff].into_iter().collect(),
        resolved: [7u64].into_iter().collect(),
        sent_at_ms: 5_000,
    };
    let logged = entry.clone();
    store
        .call_blocking(move |c| save_log(c, "{}:{}", "oncall", &logged))
        .expect("log");
    let silence = Silence {
        id: "s1".into(),
        matchers: super::super::matcher::parse_matchers("{alertname=\"A\",instance=~\"web-.*\"}")
            .expect("matchers"),
        starts_at_ms: 0,
        ends_at_ms: 10_000,
        created_by: "me".into(),
        comment: "maintenance".into(),
        updated_at_ms: 1,
    };
    let kept = silence.clone();
    store
        .call_blocking(move |c| save_silence(c, &kept))
        .expect("silence");
    std::mem::forget(store);
    let store = Store::open(dir.path()).expect("reopen");
    let (loaded, log, silences) = store
        .call_blocking(|c| Ok((load_alerts(c)?, load_log(c)?, load_silences(c)?)))
        .expect("load");
    let mut expected = alerts.clone();
    expected.sort_by_key(|a| format!("{:016x}", a.fingerprint()));
    assert_eq!(loaded, expected);
    assert_eq!(
        log,
        vec![(("{}:{}".to_string(), "oncall".to_string()), entry)]
    );
    assert_eq!(silences.len(), 1);
    assert_eq!(silences[0].matchers.len(), 2);
    assert!(silences[0].silences(&alerts[0].labels, 5_000));
    assert_eq!(silences[0].comment, "maintenance");
}

#[test]
fn outgoing_labels_name_the_host_unless_configured() {
    let labels = outgoing_labels(&[("region".into(), "eu".into())]);
    assert_eq!(
        labels,
        vec![
            ("instance".to_string(), host_name()),
            ("region".to_string(), "eu".to_string())
        ]
    );
    let configured = outgoing_labels(&[("instance".into(), "db-7".into())]);
    assert_eq!(
        configured,
        vec![("instance".to_string(), "db-7".to_string())]
    );
}

#[test]
fn only_material_changes_are_written() {
    let before = alert("A", 1_000, 250_000);
    let mut later = before.clone();
    later.ends_at_ms = 265_000;
    assert!(!material_change(Some(&before), &later, 20_000));
    later.ends_at_ms = 400_000;
    assert!(material_change(Some(&before), &later, 20_000));
    let mut resolved = before.clone();
    resolved.ends_at_ms = 19_000;
    assert!(material_change(Some(&before), &resolved, 20_000));
    assert!(material_change(None, &before, 20_000));
}

#[test]
fn generator_paths_encode_the_expression() {
    assert_eq!(
        generator_path("up == 0"),
        "/graph?g0.expr=up%20%3D%3D%200&g0.tab=1"
    );
}
