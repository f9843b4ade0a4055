//! One evaluation of a rule group at time `ts`, shared by the daemon and `prismwatch rules
//! test` so both give the same answers: each rule's expression is evaluated over the history,
//! its output (recorded series, or `ALERTS` and `ALERTS_FOR_STATE`) is written back before the
//! next rule runs, so a later rule sees an earlier rule's output at the same timestamp, as in
//! Prometheus' `Group.Eval` (rules/group.go). Pure apart from the store it is handed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use promql_parser::parser::Expr;
use serde::{Deserialize, Serialize};

use super::alert::{AlertState, RuleAlerts};

use super::eval::{self, SeriesSource, Value};
use super::template::{self, TemplateData};
use super::{Group, Rule, RuleKind};
use crate::history::History;
use crate::model::{Batch, Labels, MetricKind};

/// An instant vector: label pairs and value per series.
type Samples = Vec<(Vec<(String, String)>, f64)>;

/// Where rules read from and write to: the daemon's shared history, or a test's own.
pub trait Store: SeriesSource {
    /// Writes one source's complete batch at `ts`; series of the source missing from it end.
    fn write(&self, source: &str, ts: i64, batch: Batch);
}

impl Store for RwLock<History> {
    fn write(&self, source: &str, ts: i64, batch: Batch) {
        self.write()
            .unwrap_or_else(|e| e.into_inner())
            .ingest(source, ts, batch);
    }
}

impl Store for RefCell<History> {
    fn write(&self, source: &str, ts: i64, batch: Batch) {
        self.borrow_mut().ingest(source, ts, batch);
    }
}

/// What templates may refer to besides the alert itself.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// `$externalLabels`, sorted.
    pub external_labels: Vec<(String, String)>,
    pub external_url: String,
    /// When the daemon started with alert state restored from disk. Until a rule's history
    /// window has refilled (see [`warm_up_ms`]), alerts it does not return are held, not
    /// resolved.
    pub restored_at: Option<i64>,
    /// The evaluation interval of groups that set none (ms); a subquery without a step uses
    /// its group's interval, as in Prometheus. Zero means one minute.
    pub default_interval_ms: i64,
    /// Where the manager sends each evaluation's alerts (none: they stay in the daemon).
    pub notify: Option<crate::notify::actor::NotifyHandle>,
}

/// How long after a restart a rule's result is incomplete: its longest range (subqueries and
/// offsets included) plus a minute for the first collections to arrive.
pub fn warm_up_ms(expr: &Expr) -> i64 {
    fn longest(expr: &Expr) -> i64 {
        let offset = |o: &Option<promql_parser::parser::Offset>| match o {
            Some(promql_parser::parser::Offset::Pos(d)) => d.as_millis() as i64,
            _ => 0,
        };
        match expr {
            Expr::Aggregate(a) => longest(&a.expr).max(a.param.as_deref().map_or(0, longest)),
            Expr::Unary(u) => longest(&u.expr),
            Expr::Binary(b) => longest(&b.lhs).max(longest(&b.rhs)),
            Expr::Paren(p) => longest(&p.expr),
            Expr::Subquery(s) => s.range.as_millis() as i64 + offset(&s.offset) + longest(&s.expr),
            Expr::VectorSelector(v) => offset(&v.offset),
            Expr::MatrixSelector(m) => m.range.as_millis() as i64 + offset(&m.vs.offset),
            Expr::Call(c) => c.args.args.iter().map(|a| longest(a)).max().unwrap_or(0),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => 0,
        }
    }
    longest(expr) + 60_000
}

/// The alert state of a group's alerting rules, keyed by [`Rule::key`]. Serialisable, so the
/// daemon can keep it in the state store across restarts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub rules: BTreeMap<String, RuleAlerts>,
}

impl GroupState {
    /// Whether an alert appeared, went away or changed state (or `for` timing) between `self`
    /// and `other`, ignoring the value, annotations and last-seen time that move at every
    /// evaluation. A transition must be durable before it is announced.
    pub fn transitioned_from(&self, other: &GroupState) -> bool {
        fn life(state: &GroupState) -> impl Iterator<Item = LifeCycle<'_>> {
            state.rules.iter().flat_map(|(key, alerts)| {
                alerts.alerts().map(move |a| {
                    (
                        key.as_str(),
                        a.labels.as_slice(),
                        a.state,
                        [a.active_at, a.hold_from.unwrap_or(i64::MIN)],
                        [a.fired_at, a.resolved_at, a.keep_firing_since],
                    )
                })
            })
        }
        type LifeCycle<'a> = (
            &'a str,
            &'a [(String, String)],
            AlertState,
            [i64; 2],
            [Option<i64>; 3],
        );
        !life(self).eq(life(other))
    }
}

/// The outcome of one rule's evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleOutcome {
    pub name: String,
    /// Samples written (recorded series, or ALERTS samples).
    pub samples: usize,
    pub error: Option<String>,
}

/// Evaluates every rule of `group` at `ts`, in order.
pub fn evaluate_group(
    store: &impl Store,
    group: &Group,
    ts: i64,
    state: &mut GroupState,
    context: &Context,
) -> Vec<RuleOutcome> {
    let mut outcomes = Vec::with_capacity(group.rules.len());
    let mut live_keys = BTreeSet::new();
    let interval_ms = group
        .interval
        .map(|d| d.as_millis() as i64)
        .filter(|ms| *ms > 0)
        .unwrap_or(context.default_interval_ms);
    let options = eval::EvalOptions {
        default_subquery_step_ms: if interval_ms > 0 {
            interval_ms
        } else {
            eval::DEFAULT_SUBQUERY_STEP_MS
        },
        ..Default::default()
    };
    for rule in &group.rules {
        live_keys.insert(rule.key.clone());
        let result = eval::eval_with(store, &rule.parsed, ts, &options);
        let (batch, error) = match result.and_then(vector) {
            Ok(samples) => match &rule.kind {
                RuleKind::Record { name } => record(name, rule, samples, group.limit),
                RuleKind::Alert { .. } => {
                    let alerts = state.rules.entry(rule.key.clone()).or_default();
                    alert(rule, samples, ts, alerts, group.limit, context)
                }
            },
            Err(message) => (Batch::new(), Some(message)),
        };
        let samples = batch.len();
        // On error nothing is written, so the rule's earlier series go stale, as in Prometheus.
        store.write(&rule.source, ts, batch);
        outcomes.push(RuleOutcome {
            name: rule.name().to_string(),
            samples,
            error,
        });
    }
    state.rules.retain(|key, _| live_keys.contains(key));
    outcomes
}

/// An instant vector result; a scalar becomes one sample without labels.
fn vector(value: Value) -> Result<Samples, String> {
    match value {
        Value::Scalar(v) => Ok(vec![(Vec::new(), v)]),
        Value::Vector(v) => Ok(v),
        Value::Matrix(_) => Err("the expression returns a range vector; a rule needs an instant vector (e.g. wrap it in rate())".into()),
    }
}

fn record(name: &str, rule: &Rule, samples: Samples, limit: u64) -> (Batch, Option<String>) {
    if limit > 0 && samples.len() as u64 > limit {
        return (
            Batch::new(),
            Some(format!(
                "exceeded the group limit of {limit} series with {}",
                samples.len()
            )),
        );
    }
    let mut batch = Batch::new();
    batch.family(
        name,
        MetricKind::Untyped,
        &format!("Recorded by rule {name}."),
    );
    let mut seen = BTreeSet::new();
    for (labels, value) in samples {
        let mut merged: BTreeMap<&str, &str> = labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (k, v) in &rule.labels {
            merged.insert(k, v);
        }
        let pairs: Vec<(&str, &str)> = merged.into_iter().collect();
        let labels = Labels::new(name, &pairs);
        if !seen.insert(labels.clone()) {
            return (
                Batch::new(),
                Some("the result has several series with the same labels after applying the rule's labels".into()),
            );
        }
        batch.samples.push((labels, value));
    }
    (batch, None)
}

fn alert(
    rule: &Rule,
    samples: Samples,
    ts: i64,
    alerts: &mut RuleAlerts,
    limit: u64,
    context: &Context,
) -> (Batch, Option<String>) {
    let RuleKind::Alert {
        name,
        hold,
        keep_firing_for,
        annotations,
    } = &rule.kind
    else {
        return (Batch::new(), None);
    };
    let mut errors = Vec::new();
    let mut results = Vec::with_capacity(samples.len());
    let mut rendered = Vec::with_capacity(samples.len());
    for (labels, value) in samples {
        // Templates see the series' own labels, `__name__` included, not the rule's, as in
        // Prometheus.
        let data = TemplateData {
            labels: &labels,
            external_labels: &context.external_labels,
            value,
            external_url: &context.external_url,
        };
        // A template error becomes the text Prometheus stores (`<error expanding template:
        // ...>`), so the alert still fires and the error is visible where it is read.
        let mut expand = |text: &str| {
            let expanded = template::expand_for_alert(name, text, &data);
            if expanded.starts_with("<error expanding template") {
                errors.push(expanded.clone());
            }
            expanded
        };
        let mut merged: BTreeMap<String, String> = labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .cloned()
            .collect();
        for (k, v) in &rule.labels {
            merged.insert(k.clone(), expand(v));
        }
        merged.insert("alertname".into(), name.clone());
        merged.retain(|_, v| !v.is_empty());
        let notes: Vec<(String, String)> = annotations
            .iter()
            .map(|(k, v)| (k.clone(), expand(v)))
            .collect();
        merged.remove("alertname");
        let alert_labels: Vec<(String, String)> = merged.into_iter().collect();
        rendered.push((alert_labels.clone(), notes));
        results.push((alert_labels, value));
    }
    if limit > 0 && results.len() as u64 > limit {
        *alerts = RuleAlerts::default();
        return (
            Batch::new(),
            Some(format!(
                "exceeded the group limit of {limit} alerts with {}",
                results.len()
            )),
        );
    }
    let distinct: BTreeSet<_> = results.iter().map(|(l, _)| l).collect();
    if distinct.len() < results.len() {
        return (
            Batch::new(),
            Some("the result has several series with the same labels after applying the rule's labels".into()),
        );
    }
    let warming_up = context
        .restored_at
        .is_some_and(|at| ts < at + warm_up_ms(&rule.parsed));
    alerts.evaluate_holding(
        ts,
        results,
        hold.as_millis() as i64,
        keep_firing_for.as_millis() as i64,
        warming_up,
    );
    for (labels, notes) in rendered {
        alerts.annotate(&labels, notes);
    }
    let mut batch = Batch::new();
    batch.family(
        "ALERTS",
        MetricKind::Untyped,
        "Pending and firing alerts of the local rules, as Prometheus writes them.",
    );
    batch.family(
        "ALERTS_FOR_STATE",
        MetricKind::Untyped,
        "When each active alert became active (seconds since the epoch), as Prometheus writes it.",
    );
    for (alert_labels, for_state_labels, active_at) in alerts.series(name) {
        batch
            .samples
            .push((to_labels("ALERTS", &alert_labels), 1.0));
        batch
            .samples
            .push((to_labels("ALERTS_FOR_STATE", &for_state_labels), active_at));
    }
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    (batch, error)
}

fn to_labels(name: &str, pairs: &[(String, String)]) -> Labels {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Labels::new(name, &pairs)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::history::HistoryLimits;

    const RULES: &str = r#"
groups:
  - name: g
    limit: 3
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels:
          team: core
      - alert: JobDown
        expr: job:up:sum == 0
        labels:
          severity: "{{ if eq $labels.job \"db\" }}page{{ else }}ticket{{ end }}"
        annotations:
          summary: "{{ $labels.__name__ }} of {{ $labels.job }} is {{ $value }}"
      - alert: TooMany
        expr: up >= 0
"#;

    fn store(values: &[(&str, &str, f64)]) -> RefCell<History> {
        let history = RefCell::new(History::new(HistoryLimits::default()));
        let mut batch = Batch::new();
        batch.family("up", MetricKind::Gauge, "up");
        for (job, instance, value) in values {
            batch.push("up", &[("job", job), ("instance", instance)], *value);
        }
        history.borrow_mut().ingest("scrape", 0, batch);
        history
    }

    fn group() -> Result<Group, String> {
        let mut groups =
            super::super::load_text(Path::new("t.yml"), RULES).map_err(|e| format!("{e:?}"))?;
        groups.pop().ok_or_else(|| "no group".to_string())
    }

    #[test]
    fn a_recording_is_visible_to_later_rules_at_the_same_time() -> Result<(), String> {
        let history = store(&[("db", "a", 0.0), ("web", "b", 1.0)]);
        let group = group()?;
        let mut state = GroupState::default();
        let outcomes = evaluate_group(&history, &group, 1_000, &mut state, &Context::default());
        assert_eq!(outcomes[0].samples, 2);
        assert_eq!(outcomes[0].error, None);
        // JobDown read job:up:sum written a moment before, at the same timestamp.
        let alerts: Vec<_> = state
            .rules
            .iter()
            .filter(|(key, _)| key.starts_with("JobDown|"))
            .flat_map(|(_, r)| r.alerts())
            .filter(|a| a.labels.iter().any(|(k, v)| k == "job" && v == "db"))
            .collect();
        assert_eq!(alerts.len(), 1);
        let alert = alerts[0];
        // Rule labels are templated and merged; `__name__` is dropped from the alert.
        assert!(alert.labels.contains(&("severity".into(), "page".into())));
        assert!(alert.labels.contains(&("team".into(), "core".into())));
        assert!(!alert.labels.iter().any(|(k, _)| k == "__name__"));
        // Annotations see the series' own labels, `__name__` included.
        assert_eq!(
            alert.annotations,
            vec![("summary".into(), "job:up:sum of db is 0".into())]
        );
        let history = history.borrow();
        let recorded = history.latest(&Labels::new(
            "job:up:sum",
            &[("job", "web"), ("team", "core")],
        ));
        assert_eq!(recorded.map(|(_, v)| v), Some(1.0));
        let firing = Labels::new(
            "ALERTS",
            &[
                ("alertname", "JobDown"),
                ("alertstate", "firing"),
                ("job", "db"),
                ("severity", "page"),
                ("team", "core"),
            ],
        );
        assert_eq!(history.latest(&firing).map(|(_, v)| v), Some(1.0));
        Ok(())
    }

    #[test]
    fn the_group_limit_fails_the_rule_and_writes_nothing() -> Result<(), String> {
        let history = store(&[
            ("a", "1", 1.0),
            ("b", "2", 1.0),
            ("c", "3", 1.0),
            ("d", "4", 1.0),
        ]);
        let group = group()?;
        let mut state = GroupState::default();
        let outcomes = evaluate_group(&history, &group, 1_000, &mut state, &Context::default());
        // Four series against a limit of three: the recording is refused, so is TooMany.
        assert!(
            outcomes[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("limit of 3"))
        );
        assert_eq!(outcomes[0].samples, 0);
        assert!(
            outcomes[2]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("limit of 3"))
        );
        Ok(())
    }

    #[test]
    fn state_of_removed_rules_is_dropped_and_restored_alerts_are_held() -> Result<(), String> {
        let history = store(&[("db", "a", 0.0)]);
        let mut group = group()?;
        let mut state = GroupState::default();
        evaluate_group(&history, &group, 1_000, &mut state, &Context::default());
        assert_eq!(state.rules.len(), 2);
        // After a restart the history is empty; with restored state the alert is held.
        let empty = RefCell::new(History::new(HistoryLimits::default()));
        let restored = Context {
            restored_at: Some(100_000),
            ..Context::default()
        };
        evaluate_group(&empty, &group, 101_000, &mut state, &restored);
        let held = |state: &GroupState| {
            state
                .rules
                .values()
                .flat_map(|r| r.alerts())
                .any(|a| a.state == crate::rules::alert::AlertState::Firing)
        };
        assert!(
            held(&state),
            "a restored firing alert resolved during warm-up"
        );
        // Past the warm-up (no range in the rule: one minute) it resolves.
        evaluate_group(&empty, &group, 200_000, &mut state, &restored);
        assert!(!held(&state));
        group.rules.truncate(1);
        evaluate_group(&history, &group, 300_000, &mut state, &Context::default());
        assert!(state.rules.is_empty());
        Ok(())
    }
}
