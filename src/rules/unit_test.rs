//! `prismwatch rules test`: rule unit tests in promtool's file format (rule_files,
//! evaluation_interval, input_series in the expanding notation, alert_rule_test,
//! promql_expr_test), run through the same [`engine`](super::engine) the daemon uses. The runner
//! follows promtool's `cmd/promtool/unittest.go`: every group is evaluated at each evaluation
//! step from 0 to the last eval_time, an alert test compares the firing alerts of the newest
//! evaluation at or before its eval_time, and samples compare with a relative tolerance of 1e-6.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use serde::Deserialize;

use super::alert::AlertState;
use super::engine::{self, Context, GroupState};
use super::eval::{self, Value};
use super::{Group, RuleKind, duration};
use crate::history::{History, HistoryLimits};
use crate::model::{Batch, Labels, stale_marker};

/// Label pairs, sorted.
type Pairs = Vec<(String, String)>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    value: f64,
}

/// Runs one test file. `Err` is a problem with the file itself (unreadable, malformed, rule
/// files that do not load); `Ok` holds the failed assertions, empty when every test passed.
pub fn run_file(path: &Path) -> Result<Vec<String>, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read: {e}")])?;
    let file: TestFile = serde_saphyr::from_str(&text).map_err(|e| vec![e.to_string()])?;
    let base = path.parent().unwrap_or(Path::new("."));
    let eval_interval =
        parse_ms("evaluation_interval", file.evaluation_interval.as_deref())?.unwrap_or(60_000);
    if eval_interval <= 0 {
        return Err(vec!["evaluation_interval must be above zero".into()]);
    }
    let mut rule_paths = Vec::new();
    for pattern in &file.rule_files {
        let found = glob(&base.join(pattern));
        if found.is_empty() {
            return Err(vec![format!("rule_files: {pattern:?} matches no file")]);
        }
        rule_paths.extend(found);
    }
    let (groups, errors) = super::load(&rule_paths);
    if !errors.is_empty() {
        return Err(errors.iter().map(ToString::to_string).collect());
    }
    let groups = order_groups(groups, &file.group_eval_order)?;
    let mut failures = Vec::new();
    for (index, test) in file.tests.iter().enumerate() {
        let name = if test.name.is_empty() {
            format!("test group #{}", index + 1)
        } else {
            test.name.clone()
        };
        match run_group(&groups, test, eval_interval) {
            Ok(problems) => failures.extend(problems.into_iter().map(|p| format!("{name}: {p}"))),
            Err(problem) => failures.push(format!("{name}: {problem}")),
        }
    }
    Ok(failures)
}

fn order_groups(groups: Vec<Group>, order: &[String]) -> Result<Vec<Group>, Vec<String>> {
    if order.is_empty() {
        return Ok(groups);
    }
    if order.len() != groups.len() {
        return Err(vec![format!(
            "group_eval_order names {} groups but the rule files have {}",
            order.len(),
            groups.len()
        )]);
    }
    let mut by_name: BTreeMap<String, Group> =
        groups.into_iter().map(|g| (g.name.clone(), g)).collect();
    order
        .iter()
        .map(|name| {
            by_name
                .remove(name)
                .ok_or_else(|| vec![format!("group_eval_order: no group named {name:?}")])
        })
        .collect()
}

fn run_group(
    groups: &[Group],
    test: &TestGroup,
    eval_interval: i64,
) -> Result<Vec<String>, String> {
    let interval = parse_ms("interval", test.interval.as_deref())
        .map_err(|e| e.join("; "))?
        .unwrap_or(eval_interval);
    if interval <= 0 {
        return Err("interval must be above zero".into());
    }
    let store = RefCell::new(History::new(HistoryLimits {
        retention_ms: i64::MAX / 4,
        max_series: usize::MAX,
    }));
    for (index, input) in test.input_series.iter().enumerate() {
        let labels = input_labels(&input.series)
            .map_err(|e| format!("input_series {:?}: {e}", input.series))?;
        let values = expand_values(&input.values)
            .map_err(|e| format!("input_series {:?}: {e}", input.series))?;
        let source = format!("input:{index}");
        let mut history = store.borrow_mut();
        for (step, value) in values.into_iter().enumerate() {
            if let Some(value) = value {
                let mut batch = Batch::new();
                batch.samples.push((labels.clone(), value));
                history.ingest(&source, step as i64 * interval, batch);
            }
        }
    }
    let context = Context {
        external_labels: test
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        external_url: test.external_url.clone(),
        restored_at: None,
        default_interval_ms: eval_interval,
        notify: None,
    };
    let mut alert_tests = Vec::new();
    for t in &test.alert_rule_test {
        alert_tests.push((eval_time(&t.eval_time)?, t));
    }
    alert_tests.sort_by_key(|(at, _)| *at);
    let mut expr_tests = Vec::new();
    for t in &test.promql_expr_test {
        expr_tests.push((eval_time(&t.eval_time)?, t));
    }
    let last = alert_tests
        .iter()
        .map(|(at, _)| *at)
        .chain(expr_tests.iter().map(|(at, _)| *at))
        .max()
        .unwrap_or(0);

    let mut failures = Vec::new();
    let mut states: Vec<GroupState> = vec![GroupState::default(); groups.len()];
    let mut next_alert_test = 0;
    let mut ts = 0;
    while ts <= last {
        for (group, state) in groups.iter().zip(states.iter_mut()) {
            engine::evaluate_group(&store, group, ts, state, &context);
        }
        // An alert test at `at` reads the evaluation at `ts <= at < ts + interval`.
        while let Some((at, alert_test)) = alert_tests.get(next_alert_test)
            && *at < ts + eval_interval
        {
            if let Some(problem) = check_alerts(groups, &states, alert_test, *at) {
                failures.push(problem);
            }
            next_alert_test += 1;
        }
        ts += eval_interval;
    }
    let history = store.borrow();
    for (at, expr_test) in expr_tests {
        if let Some(problem) = check_expr(&history, expr_test, at, eval_interval) {
            failures.push(problem);
        }
    }
    Ok(failures)
}

fn check_alerts(
    groups: &[Group],
    states: &[GroupState],
    test: &AlertTest,
    at: i64,
) -> Option<String> {
    let mut got: Vec<(Pairs, Pairs)> = Vec::new();
    for (group, state) in groups.iter().zip(states) {
        for rule in &group.rules {
            if !matches!(&rule.kind, RuleKind::Alert { name, .. } if *name == test.alertname) {
                continue;
            }
            let Some(alerts) = state.rules.get(&rule.key) else {
                continue;
            };
            for alert in alerts.alerts().filter(|a| a.state == AlertState::Firing) {
                let mut labels = alert.labels.clone();
                labels.push(("alertname".into(), test.alertname.clone()));
                labels.sort();
                let mut notes = alert.annotations.clone();
                notes.sort();
                got.push((labels, notes));
            }
        }
    }
    let mut expected: Vec<(Pairs, Pairs)> = test
        .exp_alerts
        .iter()
        .map(|e| {
            let mut labels: Pairs = e
                .exp_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.push(("alertname".into(), test.alertname.clone()));
            labels.sort();
            let notes = e
                .exp_annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (labels, notes)
        })
        .collect();
    got.sort();
    expected.sort();
    (got != expected).then(|| {
        format!(
            "alertname: {}, time: {},\n        exp: {},\n        got: {}",
            test.alertname,
            show_ms(at),
            show_alerts(&expected),
            show_alerts(&got)
        )
    })
}

fn check_expr(history: &History, test: &ExprTest, at: i64, eval_interval: i64) -> Option<String> {
    let fail = |message: String| {
        Some(format!(
            "expr: {:?}, time: {}: {message}",
            test.expr,
            show_ms(at)
        ))
    };
    let parsed: Expr = match super::parse_expr(&test.expr) {
        Ok(expr) => expr,
        Err(e) => return fail(format!("cannot parse the expression: {e}")),
    };
    if let Err(e) = eval::check_supported(&parsed) {
        return fail(e);
    }
    let options = eval::EvalOptions {
        default_subquery_step_ms: eval_interval,
        ..Default::default()
    };
    let mut got: Vec<(Pairs, f64)> = match eval::eval_with(history, &parsed, at, &options) {
        Ok(Value::Scalar(v)) => vec![(Vec::new(), v)],
        Ok(Value::Vector(v)) => v,
        Ok(Value::Matrix(_)) => return fail("range vector results are not supported".into()),
        Err(e) => return fail(e),
    };
    let mut expected = Vec::new();
    for sample in &test.exp_samples {
        match series_labels(&sample.labels) {
            Ok(labels) => expected.push((labels, sample.value)),
            Err(e) => return fail(format!("exp_samples labels {:?}: {e}", sample.labels)),
        }
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let same = got.len() == expected.len()
        && got
            .iter()
            .zip(&expected)
            .all(|(g, e)| g.0 == e.0 && almost_equal(g.1, e.1));
    if same {
        return None;
    }
    fail(format!(
        "\n        exp: {}\n        got: {}",
        show_samples(&expected),
        show_samples(&got)
    ))
}

/// promtool's comparison: equal, both NaN, or within a relative 1e-6.
fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 1e-6;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() || a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()) < EPSILON
}

/// The labels of a series written as `name{a="b"}`, `{a="b"}` or `name`, sorted, `__name__`
/// included when there is a name; empty for `{}` or "".
fn series_labels(text: &str) -> Result<Pairs, String> {
    let text = text.trim();
    if text.is_empty() || text == "{}" {
        return Ok(Vec::new());
    }
    let Expr::VectorSelector(selector) = promql_parser::parser::parse(text)? else {
        return Err("expected a series such as name{label=\"value\"}".into());
    };
    if selector.offset.is_some() || selector.at.is_some() {
        return Err("a series description takes no offset or @".into());
    }
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for matcher in &selector.matchers.matchers {
        if matcher.op != MatchOp::Equal {
            return Err(format!(
                "label {:?}: only `=` can describe a series",
                matcher.name
            ));
        }
        pairs.push((&matcher.name, &matcher.value));
    }
    let name = selector
        .name
        .as_deref()
        .or_else(|| pairs.iter().find(|(k, _)| *k == "__name__").map(|p| p.1))
        .unwrap_or("");
    pairs.retain(|(k, _)| *k != "__name__");
    let mut labels: Pairs = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !name.is_empty() {
        labels.push(("__name__".into(), name.to_string()));
    }
    labels.sort();
    labels.dedup_by(|a, b| a.0 == b.0);
    Ok(labels)
}

/// An input series' labels as the history keeps them; it needs a metric name.
fn input_labels(text: &str) -> Result<Labels, String> {
    let pairs = series_labels(text)?;
    let name = pairs
        .iter()
        .find(|(k, _)| k == "__name__")
        .map(|(_, v)| v.as_str())
        .ok_or("an input series needs a metric name")?;
    let rest: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| k != "__name__")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(Labels::new(name, &rest))
}

/// Expands promtool's value notation: `1 2 3`, `a+bxN` / `a-bxN` (N+1 values, a, a+b, ...),
/// `axN` (a, N+1 times), `_` (no sample), `_xN` (N steps without samples) and `stale`.
pub fn expand_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut values = Vec::new();
    for token in text.split_whitespace() {
        if token == "_" {
            values.push(None);
            continue;
        }
        if token == "stale" {
            values.push(Some(stale_marker()));
            continue;
        }
        let Some((head, times)) = token.rsplit_once('x') else {
            values.push(Some(number(token)?));
            continue;
        };
        let times: usize = times
            .parse()
            .map_err(|_| format!("`{token}`: the count after `x` must be a whole number"))?;
        if head == "_" {
            values.extend(std::iter::repeat_n(None, times));
            continue;
        }
        // The step's sign: the first + or - after the start that does not belong to an exponent.
        let bytes = head.as_bytes();
        let split = (1..bytes.len()).find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let (mut value, step) = match split {
            Some(i) => (number(&head[..i])?, number(&head[i..])?),
            None => (number(head)?, 0.0),
        };
        // Repeated addition, as promtool does, so float rounding matches.
        for _ in 0..=times {
            values.push(Some(value));
            value += step;
        }
    }
    Ok(values)
}

fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .map_err(|_| format!("`{text}` is not a number"))
}

fn parse_ms(field: &str, text: Option<&str>) -> Result<Option<i64>, Vec<String>> {
    text.map(|t| {
        duration::parse(t)
            .map(|d| d.as_millis() as i64)
            .map_err(|e| vec![format!("{field}: {e}")])
    })
    .transpose()
}

fn eval_time(text: &str) -> Result<i64, String> {
    duration::parse(text)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| format!("eval_time: {e}"))
}

/// Paths matching `pattern`, where the file name may hold `*` wildcards (as promtool's globs).
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains('*') {
        return if pattern.exists() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(tail) = text.strip_prefix(prefix) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| wildcard(rest, &tail[i..]))
        }
    }
}

fn show_ms(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

fn show_pairs(pairs: &[(String, String)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn show_alerts(alerts: &[(Pairs, Pairs)]) -> String {
    let mut out = String::from("[");
    for (index, (labels, notes)) in alerts.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "labels: {} annotations: {}",
            show_pairs(labels),
            show_pairs(notes)
        );
    }
    out.push(']');
    out
}

fn show_samples(samples: &[(Pairs, f64)]) -> String {
    let inner: Vec<String> = samples
        .iter()
        .map(|(l, v)| format!("{} {v}", show_pairs(l)))
        .collect();
    format!("[{}]", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_notation_matches_promtool() -> Result<(), String> {
        let v = expand_values("0+10x3 _ 5 _x2 1-1x2 7x1 stale -2")?;
        let shown: Vec<String> = v
            .iter()
            .map(|x| match x {
                None => "_".into(),
                Some(v) if crate::model::is_stale_marker(*v) => "stale".into(),
                Some(v) => v.to_string(),
            })
            .collect();
        assert_eq!(shown.join(" "), "0 10 20 30 _ 5 _ _ 1 0 -1 7 7 stale -2");
        assert!(expand_values("1+2xq").is_err());
        assert!(expand_values("abc").is_err());
        assert_eq!(
            expand_values("1e3+1e-3x1")?,
            vec![Some(1000.0), Some(1000.001)]
        );
        Ok(())
    }

    #[test]
    fn series_descriptions_parse_to_labels() -> Result<(), String> {
        let labels = input_labels(r#"up{job="a", instance="b"}"#)?;
        assert_eq!(labels.metric_name(), "up");
        assert_eq!(labels.get("job"), Some("a"));
        assert!(series_labels("{}")?.is_empty());
        assert_eq!(
            series_labels(r#"{job="a"}"#)?,
            vec![("job".into(), "a".into())]
        );
        assert!(input_labels(r#"{job="a"}"#).is_err());
        assert!(series_labels(r#"up{job=~"a"}"#).is_err());
        Ok(())
    }

    #[test]
    fn tolerance_is_relative() {
        assert!(almost_equal(1.0, 1.0 + 1e-9));
        assert!(!almost_equal(1.0, 1.001));
        assert!(almost_equal(f64::NAN, f64::NAN));
        assert!(almost_equal(0.0, 0.0));
        assert!(!almost_equal(0.0, 1e-300));
    }
}
