//! A first PromQL evaluator over the history, Prometheus 3 semantics (left-open ranges and
//! lookback, staleness markers honoured), for the constructs alerting rules use most. Not yet
//! wired into the daemon: rule evaluation, matching modifiers beyond on/ignoring, subqueries and
//! the remaining functions come next, and anything not handled is an error naming the construct,
//! never a silently wrong answer.

use std::collections::BTreeMap;

use promql_parser::label::MatchOp;
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector, Offset, VectorSelector,
};

use crate::history::History;
use crate::model::{Labels, is_stale_marker};

/// Prometheus' default lookback for instant selectors.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Sorted label pairs, `__name__` included when the series still has a name.
pub type LabelSet = Vec<(String, String)>;

/// Samples `(ms, value)` of one series.
pub type Samples = Vec<(i64, f64)>;

/// A range vector: series with their samples.
pub type RangeVector = Vec<(LabelSet, Samples)>;

/// A function of one series' samples and the range width (ms).
type SeriesFunction<'a> = &'a dyn Fn(&[(i64, f64)], i64) -> Option<f64>;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<(LabelSet, f64)>),
    Matrix(RangeVector),
}

/// Evaluates `expr` at `ts` (milliseconds) over `history`.
pub fn eval(history: &History, expr: &Expr, ts: i64) -> Result<Value, String> {
    match expr {
        Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
        Expr::Paren(p) => eval(history, &p.expr, ts),
        Expr::Unary(u) => match eval(history, &u.expr, ts)? {
            Value::Scalar(v) => Ok(Value::Scalar(-v)),
            Value::Vector(v) => Ok(Value::Vector(
                v.into_iter().map(|(l, x)| (drop_name(l), -x)).collect(),
            )),
            Value::Matrix(_) => Err("unary minus on a range vector".into()),
        },
        Expr::VectorSelector(vs) => Ok(Value::Vector(instant(history, vs, ts)?)),
        Expr::MatrixSelector(ms) => Ok(Value::Matrix(range(history, ms, ts)?)),
        Expr::Call(call) => call_function(history, call, ts),
        Expr::Aggregate(agg) => aggregate(history, agg, ts),
        Expr::Binary(bin) => binary(history, bin, ts),
        other => Err(format!("`{other}` is not supported by the evaluator yet")),
    }
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

/// Applies a vector-and-scalar operation to each sample; a filtering comparison keeps the
/// sample's labels, anything else drops the metric name.
fn scalar_vector(v: Vec<(LabelSet, f64)>, f: impl Fn(f64) -> Option<f64>, filter: bool) -> Value {
    Value::Vector(
        v.into_iter()
            .filter_map(|(l, x)| f(x).map(|r| (if filter { l } else { drop_name(l) }, r)))
            .collect(),
    )
}

/// The metric names a selector reads: its name, or every family whose name satisfies the
/// selector's `__name__` matchers (`{__name__=~"pg_settings_.*"}`).
fn metric_names(history: &History, vs: &VectorSelector) -> Result<Vec<String>, String> {
    if let Some(name) = &vs.name {
        return Ok(vec![name.clone()]);
    }
    let name_matchers: Vec<_> = vs
        .matchers
        .matchers
        .iter()
        .filter(|m| m.name == "__name__")
        .collect();
    if name_matchers.is_empty() {
        return Err(format!(
            "selector `{vs}` without a metric name or __name__ matcher is not supported yet"
        ));
    }
    Ok(history
        .family_names()
        .filter(|name| name_matchers.iter().all(|m| m.is_match(name)))
        .map(str::to_string)
        .collect())
}

fn selects(vs: &VectorSelector, labels: &Labels) -> bool {
    vs.matchers
        .matchers
        .iter()
        .all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
}

fn pairs(labels: &Labels) -> LabelSet {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Samples in `(start, end]` per matching series, stale markers removed.
fn series_in(
    history: &History,
    vs: &VectorSelector,
    start: i64,
    end: i64,
) -> Result<RangeVector, String> {
    if vs.at.is_some() || !vs.matchers.or_matchers.is_empty() {
        return Err(format!(
            "`{vs}`: the @ modifier and `or` matchers are not supported yet"
        ));
    }
    let mut ranges = Vec::new();
    for name in metric_names(history, vs)? {
        ranges.extend(history.select(&name, |labels| selects(vs, labels), start + 1, end));
    }
    Ok(ranges
        .into_iter()
        .map(|range| {
            (
                pairs(&range.labels),
                range
                    .samples
                    .into_iter()
                    .filter(|(_, v)| !is_stale_marker(*v))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, samples)| !samples.is_empty())
        .collect())
}

fn instant(
    history: &History,
    vs: &VectorSelector,
    ts: i64,
) -> Result<Vec<(LabelSet, f64)>, String> {
    let at = ts - offset_ms(&vs.offset);
    if vs.at.is_some() {
        return Err(format!("`{vs}`: the @ modifier is not supported yet"));
    }
    let mut ranges = Vec::new();
    for name in metric_names(history, vs)? {
        ranges.extend(history.select(
            &name,
            |labels| selects(vs, labels),
            at - LOOKBACK_MS + 1,
            at,
        ));
    }
    // The newest sample in the lookback window, unless it is a staleness marker.
    Ok(ranges
        .into_iter()
        .filter_map(|range| {
            let (_, value) = *range.samples.last()?;
            (!is_stale_marker(value)).then(|| (pairs(&range.labels), value))
        })
        .collect())
}

fn range(history: &History, ms: &MatrixSelector, ts: i64) -> Result<RangeVector, String> {
    let end = ts - offset_ms(&ms.vs.offset);
    series_in(history, &ms.vs, end - ms.range.as_millis() as i64, end)
}

fn drop_name(mut labels: LabelSet) -> LabelSet {
    labels.retain(|(k, _)| k != "__name__");
    labels
}

fn call_function(history: &History, call: &Call, ts: i64) -> Result<Value, String> {
    let name = call.func.name;
    let args = &call.args.args;
    let matrix = |index: usize| -> Result<(RangeVector, i64), String> {
        match args.get(index).map(|a| a.as_ref()) {
            Some(Expr::MatrixSelector(ms)) => {
                Ok((range(history, ms, ts)?, ms.range.as_millis() as i64))
            }
            _ => Err(format!(
                "{name}(): expected a range selector such as x[5m] (subqueries are not supported yet)"
            )),
        }
    };
    let per_series = |f: SeriesFunction<'_>| -> Result<Value, String> {
        let (series, width) = matrix(0)?;
        Ok(Value::Vector(
            series
                .into_iter()
                .filter_map(|(l, s)| f(&s, width).map(|v| (drop_name(l), v)))
                .collect(),
        ))
    };
    match name {
        "rate" => per_series(&|s, w| extrapolated(s, ts, w, true, true)),
        "increase" => per_series(&|s, w| extrapolated(s, ts, w, true, false)),
        "delta" => per_series(&|s, w| extrapolated(s, ts, w, false, false)),
        "irate" => per_series(&|s, _| {
            let [.., (t1, v1), (t2, v2)] = s else {
                return None;
            };
            let diff = if v2 < v1 { *v2 } else { v2 - v1 };
            Some(diff / ((t2 - t1) as f64 / 1000.0))
        }),
        "changes" => {
            per_series(&|s, _| Some(s.windows(2).filter(|w| w[0].1 != w[1].1).count() as f64))
        }
        "resets" => {
            per_series(&|s, _| Some(s.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64))
        }
        "avg_over_time" => {
            per_series(&|s, _| Some(s.iter().map(|x| x.1).sum::<f64>() / s.len() as f64))
        }
        "sum_over_time" => per_series(&|s, _| Some(s.iter().map(|x| x.1).sum())),
        "min_over_time" => per_series(&|s, _| s.iter().map(|x| x.1).reduce(f64::min)),
        "max_over_time" => per_series(&|s, _| s.iter().map(|x| x.1).reduce(f64::max)),
        "count_over_time" => per_series(&|s, _| Some(s.len() as f64)),
        "last_over_time" => {
            // Keeps the metric name, as Prometheus does.
            let (series, _) = matrix(0)?;
            Ok(Value::Vector(
                series
                    .into_iter()
                    .filter_map(|(l, s)| s.last().map(|x| (l, x.1)))
                    .collect(),
            ))
        }
        "abs" | "ceil" | "floor" => {
            let f = match name {
                "abs" => f64::abs,
                "ceil" => f64::ceil,
                _ => f64::floor,
            };
            match args.first().map(|a| eval(history, a, ts)).transpose()? {
                Some(Value::Vector(v)) => Ok(Value::Vector(
                    v.into_iter().map(|(l, x)| (drop_name(l), f(x))).collect(),
                )),
                _ => Err(format!("{name}(): expected an instant vector")),
            }
        }
        "time" => Ok(Value::Scalar(ts as f64 / 1000.0)),
        "vector" => match args.first().map(|a| eval(history, a, ts)).transpose()? {
            Some(Value::Scalar(v)) => Ok(Value::Vector(vec![(Vec::new(), v)])),
            _ => Err("vector(): expected a scalar".into()),
        },
        "scalar" => match args.first().map(|a| eval(history, a, ts)).transpose()? {
            Some(Value::Vector(v)) if v.len() == 1 => Ok(Value::Scalar(v[0].1)),
            Some(Value::Vector(_)) => Ok(Value::Scalar(f64::NAN)),
            _ => Err("scalar(): expected an instant vector".into()),
        },
        "deriv" => per_series(&|s, _| {
            let first = s.first()?.0;
            linear_regression(s, first).map(|(slope, _)| slope)
        }),
        "predict_linear" => {
            let seconds = scalar_arg(history, args.get(1).map(|a| a.as_ref()), ts, name)?;
            per_series(&|s, _| {
                linear_regression(s, ts).map(|(slope, intercept)| intercept + slope * seconds)
            })
        }
        "stddev_over_time" | "stdvar_over_time" => {
            let root = name == "stddev_over_time";
            per_series(&|s, _| {
                let n = s.len() as f64;
                let mean = s.iter().map(|x| x.1).sum::<f64>() / n;
                let variance = s.iter().map(|x| (x.1 - mean).powi(2)).sum::<f64>() / n;
                Some(if root { variance.sqrt() } else { variance })
            })
        }
        "absent_over_time" => {
            let (series, _) = matrix(0)?;
            let labels = match args.first().map(|a| a.as_ref()) {
                Some(Expr::MatrixSelector(ms)) => absent_labels(&ms.vs),
                _ => Vec::new(),
            };
            Ok(Value::Vector(if series.is_empty() {
                vec![(labels, 1.0)]
            } else {
                Vec::new()
            }))
        }
        "absent" => {
            let Some(arg) = args.first() else {
                return Err("absent(): expected an instant vector".into());
            };
            let Value::Vector(v) = eval(history, arg, ts)? else {
                return Err("absent(): expected an instant vector".into());
            };
            let labels = match arg.as_ref() {
                Expr::VectorSelector(vs) => absent_labels(vs),
                _ => Vec::new(),
            };
            Ok(Value::Vector(if v.is_empty() {
                vec![(labels, 1.0)]
            } else {
                Vec::new()
            }))
        }
        "clamp" | "clamp_min" | "clamp_max" | "round" => {
            let Some(Value::Vector(v)) = args.first().map(|a| eval(history, a, ts)).transpose()?
            else {
                return Err(format!("{name}(): expected an instant vector"));
            };
            let arg = |i: usize| scalar_arg(history, args.get(i).map(|a| a.as_ref()), ts, name);
            let f: Box<dyn Fn(f64) -> f64> = match name {
                "clamp" => {
                    let (low, high) = (arg(1)?, arg(2)?);
                    if low > high {
                        return Ok(Value::Vector(Vec::new()));
                    }
                    Box::new(move |x| x.max(low).min(high))
                }
                "clamp_min" => {
                    let low = arg(1)?;
                    Box::new(move |x| x.max(low))
                }
                "clamp_max" => {
                    let high = arg(1)?;
                    Box::new(move |x| x.min(high))
                }
                _ => {
                    let to = if args.len() > 1 { arg(1)? } else { 1.0 };
                    // Prometheus rounds half up: floor(x / to + 0.5) * to.
                    Box::new(move |x| (x / to + 0.5).floor() * to)
                }
            };
            Ok(Value::Vector(
                v.into_iter().map(|(l, x)| (drop_name(l), f(x))).collect(),
            ))
        }
        other => Err(format!(
            "function {other}() is not supported by the evaluator yet"
        )),
    }
}

/// The value of a scalar argument (a number or an expression that yields one).
fn scalar_arg(
    history: &History,
    arg: Option<&Expr>,
    ts: i64,
    function: &str,
) -> Result<f64, String> {
    match arg.map(|a| eval(history, a, ts)).transpose()? {
        Some(Value::Scalar(v)) => Ok(v),
        _ => Err(format!("{function}(): expected a scalar argument")),
    }
}

/// The labels `absent()` returns: the selector's equality matchers, name excluded.
fn absent_labels(vs: &VectorSelector) -> LabelSet {
    let mut labels: LabelSet = vs
        .matchers
        .matchers
        .iter()
        .filter(|m| m.name != "__name__" && matches!(m.op, MatchOp::Equal))
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    labels.sort();
    labels.dedup_by(|a, b| a.0 == b.0);
    labels
}

/// Least-squares slope (per second) and the intercept at `intercept_ms`, as Prometheus'
/// `linearRegression`; a constant series has slope 0.
fn linear_regression(samples: &[(i64, f64)], intercept_ms: i64) -> Option<(f64, f64)> {
    if samples.len() < 2 {
        return None;
    }
    let n = samples.len() as f64;
    let (mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) = (0.0, 0.0, 0.0, 0.0);
    let constant = samples.iter().all(|s| s.1 == samples[0].1);
    for &(t, v) in samples {
        let x = (t - intercept_ms) as f64 / 1000.0;
        sum_x += x;
        sum_y += v;
        sum_xy += x * v;
        sum_x2 += x * x;
    }
    if constant {
        return Some((0.0, samples[0].1));
    }
    let covariance = sum_xy - sum_x * sum_y / n;
    let variance = sum_x2 - sum_x * sum_x / n;
    let slope = covariance / variance;
    Some((slope, sum_y / n - slope * sum_x / n))
}

/// Prometheus' `extrapolatedRate`: the change over the samples in the window, extrapolated to
/// the window's edges (by at most half a sample interval, and not below zero for counters).
fn extrapolated(
    samples: &[(i64, f64)],
    ts: i64,
    width_ms: i64,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    let [(first_t, first_v), .., (last_t, last_v)] = samples else {
        return None;
    };
    let mut result = last_v - first_v;
    if counter {
        for pair in samples.windows(2) {
            if pair[1].1 < pair[0].1 {
                result += pair[0].1;
            }
        }
    }
    let range_start = (ts - width_ms) as f64 / 1000.0;
    let range_end = ts as f64 / 1000.0;
    let (first_s, last_s) = (*first_t as f64 / 1000.0, *last_t as f64 / 1000.0);
    let sampled = last_s - first_s;
    let average = sampled / (samples.len() - 1) as f64;
    let mut to_start = first_s - range_start;
    let to_end = range_end - last_s;
    if counter && result > 0.0 && *first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    let mut factor = interval / sampled;
    if per_second {
        factor /= width_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// The labels that group an aggregation: `by` keeps the listed ones, `without` drops them (and
/// the name), no modifier groups everything together.
fn grouping(labels: &LabelSet, modifier: &Option<LabelModifier>) -> LabelSet {
    match modifier {
        None => Vec::new(),
        Some(modifier) => signature(labels, Some(modifier)),
    }
}

fn aggregate(history: &History, agg: &AggregateExpr, ts: i64) -> Result<Value, String> {
    let op = agg.op.to_string();
    let Value::Vector(input) = eval(history, &agg.expr, ts)? else {
        return Err(format!("{op}(): expected an instant vector"));
    };
    if let Some(param) = &agg.param {
        return aggregate_with_parameter(history, &op, param, &agg.modifier, input, ts);
    }
    let mut groups: BTreeMap<LabelSet, Vec<f64>> = BTreeMap::new();
    for (labels, value) in input {
        groups
            .entry(grouping(&labels, &agg.modifier))
            .or_default()
            .push(value);
    }
    let mut out = Vec::new();
    for (labels, values) in groups {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let value = match op.as_str() {
            "sum" => values.iter().sum(),
            "avg" => mean,
            "min" => values.iter().copied().fold(f64::INFINITY, f64::min),
            "max" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            "count" => n,
            "group" => 1.0,
            "stdvar" => values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n,
            "stddev" => (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt(),
            other => {
                return Err(format!(
                    "aggregation {other}() is not supported by the evaluator yet"
                ));
            }
        };
        out.push((labels, value));
    }
    Ok(Value::Vector(out))
}

/// topk, bottomk (keep whole series, labels included), quantile and count_values.
fn aggregate_with_parameter(
    history: &History,
    op: &str,
    param: &Expr,
    modifier: &Option<LabelModifier>,
    input: Vec<(LabelSet, f64)>,
    ts: i64,
) -> Result<Value, String> {
    let mut groups: BTreeMap<LabelSet, Vec<(LabelSet, f64)>> = BTreeMap::new();
    for (labels, value) in input {
        groups
            .entry(grouping(&labels, modifier))
            .or_default()
            .push((labels, value));
    }
    match op {
        "topk" | "bottomk" => {
            let k = scalar_arg(history, Some(param), ts, op)?;
            let k = if k.is_finite() && k >= 1.0 {
                k as usize
            } else {
                0
            };
            let mut out = Vec::new();
            for (_, mut members) in groups {
                members.sort_by(|a, b| {
                    if op == "topk" {
                        b.1.total_cmp(&a.1)
                    } else {
                        a.1.total_cmp(&b.1)
                    }
                });
                members.truncate(k);
                out.extend(members);
            }
            Ok(Value::Vector(out))
        }
        "quantile" => {
            let q = scalar_arg(history, Some(param), ts, op)?;
            let out = groups
                .into_iter()
                .map(|(labels, members)| {
                    let mut values: Vec<f64> = members.into_iter().map(|m| m.1).collect();
                    values.sort_by(f64::total_cmp);
                    (labels, quantile(q, &values))
                })
                .collect();
            Ok(Value::Vector(out))
        }
        "count_values" => {
            let Expr::StringLiteral(label) = param else {
                return Err("count_values(): expected a label name string".into());
            };
            let mut counts: BTreeMap<LabelSet, f64> = BTreeMap::new();
            for (group, members) in groups {
                for (_, value) in members {
                    let mut labels = group.clone();
                    labels.retain(|(k, _)| *k != label.val);
                    labels.push((
                        label.val.clone(),
                        crate::exposition::format_value_string(value),
                    ));
                    labels.sort();
                    *counts.entry(labels).or_default() += 1.0;
                }
            }
            Ok(Value::Vector(counts.into_iter().collect()))
        }
        other => Err(format!(
            "aggregation {other}() with a parameter is not supported by the evaluator yet"
        )),
    }
}

/// Prometheus' quantile: linear interpolation between ranks, -Inf/+Inf outside [0, 1].
fn quantile(q: f64, sorted: &[f64]) -> f64 {
    if sorted.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let rank = q * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(sorted.len() - 1);
    let weight = rank - rank.floor();
    sorted[lower] * (1.0 - weight) + sorted[upper] * weight
}

fn binary(history: &History, bin: &BinaryExpr, ts: i64) -> Result<Value, String> {
    let op = bin.op.to_string();
    let modifier = bin.modifier.as_ref();
    let return_bool = modifier.is_some_and(|m| m.return_bool);
    let comparison = bin.op.is_comparison_operator();
    let apply = |a: f64, b: f64| -> Option<f64> {
        let value = match op.as_str() {
            "+" => a + b,
            "-" => a - b,
            "*" => a * b,
            "/" => a / b,
            "%" => a % b,
            "^" => a.powf(b),
            "==" => f64::from(u8::from(a == b)),
            "!=" => f64::from(u8::from(a != b)),
            ">" => f64::from(u8::from(a > b)),
            "<" => f64::from(u8::from(a < b)),
            ">=" => f64::from(u8::from(a >= b)),
            "<=" => f64::from(u8::from(a <= b)),
            _ => return None,
        };
        Some(value)
    };
    let lhs = eval(history, &bin.lhs, ts)?;
    let rhs = eval(history, &bin.rhs, ts)?;
    // Comparison without bool filters (keeping the left value); with bool it yields 0/1.
    let result = |left: f64, right: f64, keep: f64| -> Option<f64> {
        let value = apply(left, right)?;
        if comparison && !return_bool {
            (value == 1.0).then_some(keep)
        } else {
            Some(value)
        }
    };
    match (lhs, rhs) {
        (Value::Scalar(a), Value::Scalar(b)) => apply(a, b)
            .map(Value::Scalar)
            .ok_or_else(|| format!("operator {op} between scalars")),
        (Value::Vector(v), Value::Scalar(s)) => Ok(scalar_vector(
            v,
            |x| result(x, s, x),
            comparison && !return_bool,
        )),
        (Value::Scalar(s), Value::Vector(v)) => Ok(scalar_vector(
            v,
            |x| result(s, x, x),
            comparison && !return_bool,
        )),
        (Value::Vector(left), Value::Vector(right)) => {
            vector_vector(&op, bin, left, right, &result)
        }
        _ => Err(format!("operator {op} on range vectors")),
    }
}

fn signature(labels: &LabelSet, matching: Option<&LabelModifier>) -> LabelSet {
    match matching {
        Some(LabelModifier::Include(names)) => labels
            .iter()
            .filter(|(k, _)| names.labels.contains(k))
            .cloned()
            .collect(),
        Some(LabelModifier::Exclude(names)) => labels
            .iter()
            .filter(|(k, _)| k != "__name__" && !names.labels.contains(k))
            .cloned()
            .collect(),
        None => labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .cloned()
            .collect(),
    }
}

fn vector_vector(
    op: &str,
    bin: &BinaryExpr,
    left: Vec<(LabelSet, f64)>,
    right: Vec<(LabelSet, f64)>,
    result: &dyn Fn(f64, f64, f64) -> Option<f64>,
) -> Result<Value, String> {
    use promql_parser::parser::VectorMatchCardinality;
    let modifier = bin.modifier.as_ref();
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let filter = bin.op.is_comparison_operator() && !modifier.is_some_and(|m| m.return_bool);
    // Many-to-one (group_left) and one-to-many (group_right): the "many" side keeps its labels,
    // plus the listed labels copied from the "one" side, whose signatures must be unique.
    if let Some(m) = modifier
        && let VectorMatchCardinality::ManyToOne(include)
        | VectorMatchCardinality::OneToMany(include) = &m.card
    {
        let left_is_many = matches!(m.card, VectorMatchCardinality::ManyToOne(_));
        let (many, one) = if left_is_many {
            (left, right)
        } else {
            (right, left)
        };
        let mut one_by: BTreeMap<LabelSet, (LabelSet, f64)> = BTreeMap::new();
        for (labels, value) in one {
            let key = signature(&labels, matching);
            if one_by.insert(key, (labels, value)).is_some() {
                return Err(format!(
                    "{op}: many-to-many matching not allowed: the \"one\" side has duplicate series for a match group"
                ));
            }
        }
        let mut out = Vec::new();
        for (labels, value) in many {
            let Some((one_labels, one_value)) = one_by.get(&signature(&labels, matching)) else {
                continue;
            };
            let (l, r) = if left_is_many {
                (value, *one_value)
            } else {
                (*one_value, value)
            };
            let Some(v) = result(l, r, l) else { continue };
            let mut labels = if filter { labels } else { drop_name(labels) };
            for name in &include.labels {
                labels.retain(|(k, _)| k != name);
                if let Some((_, copied)) = one_labels.iter().find(|(k, _)| k == name) {
                    labels.push((name.clone(), copied.clone()));
                }
            }
            labels.sort();
            out.push((labels, v));
        }
        return Ok(Value::Vector(out));
    }
    let right_by: BTreeMap<LabelSet, (LabelSet, f64)> = right
        .into_iter()
        .map(|(l, v)| (signature(&l, matching), (l, v)))
        .collect();
    match op {
        "and" => Ok(Value::Vector(
            left.into_iter()
                .filter(|(l, _)| right_by.contains_key(&signature(l, matching)))
                .collect(),
        )),
        "unless" => Ok(Value::Vector(
            left.into_iter()
                .filter(|(l, _)| !right_by.contains_key(&signature(l, matching)))
                .collect(),
        )),
        "or" => {
            let left_signatures: std::collections::BTreeSet<LabelSet> =
                left.iter().map(|(l, _)| signature(l, matching)).collect();
            let mut out = left;
            out.extend(
                right_by
                    .into_iter()
                    .filter(|(s, _)| !left_signatures.contains(s))
                    .map(|(_, lv)| lv),
            );
            Ok(Value::Vector(out))
        }
        _ => {
            let mut out = Vec::new();
            for (labels, value) in left {
                let signature = signature(&labels, matching);
                if let Some((_, other)) = right_by.get(&signature)
                    && let Some(v) = result(value, *other, value)
                {
                    // Results take the left side's labels, minus the name unless filtering,
                    // restricted to the `on` labels when `on` is given.
                    let labels = match matching {
                        Some(LabelModifier::Include(_)) if !filter => signature,
                        _ if filter => labels,
                        _ => drop_name(labels),
                    };
                    out.push((labels, v));
                }
            }
            Ok(Value::Vector(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryLimits;
    use crate::model::{Batch, MetricKind};

    /// A history with `http_requests_total{job="api",instance=i}` growing by `rate_per_s * 15`
    /// every 15 s from 0 s to 30 min, and a gauge `up`.
    fn history() -> History {
        let mut history = History::new(HistoryLimits::default());
        for step in 0..=120 {
            let ts = step * 15_000;
            let mut batch = Batch::new();
            batch.family("http_requests_total", MetricKind::Counter, "requests");
            batch.push(
                "http_requests_total",
                &[("job", "api"), ("instance", "a")],
                step as f64 * 15.0,
            );
            batch.push(
                "http_requests_total",
                &[("job", "api"), ("instance", "b")],
                step as f64 * 30.0,
            );
            batch.family("up", MetricKind::Gauge, "up");
            batch.push("up", &[("job", "api"), ("instance", "a")], 1.0);
            batch.push("up", &[("job", "api"), ("instance", "b")], 0.0);
            history.ingest("t", ts, batch);
        }
        history
    }

    fn check(expr: &str, ts: i64) -> Vec<(String, f64)> {
        let parsed = promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        match eval(&history(), &parsed, ts).unwrap_or_else(|e| panic!("{expr}: {e}")) {
            Value::Vector(v) => v
                .into_iter()
                .map(|(l, x)| (format!("{l:?}"), (x * 1e9).round() / 1e9))
                .collect(),
            Value::Scalar(x) => vec![("scalar".to_string(), x)],
            Value::Matrix(m) => m
                .into_iter()
                .map(|(l, s)| (format!("{l:?}"), s.len() as f64))
                .collect(),
        }
    }

    #[test]
    fn rate_and_increase_match_prometheus_extrapolation() {
        // 1 and 2 per second; samples 15 s apart, window off the sample grid.
        let at = 20 * 60_000 + 7_500;
        let rates: Vec<f64> = check("rate(http_requests_total[5m])", at)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(rates, vec![1.0, 2.0]);
        let increase: Vec<f64> = check(r#"increase(http_requests_total{instance="a"}[5m])"#, at)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(increase, vec![300.0]);
    }

    #[test]
    fn aggregation_comparison_and_set_operators() {
        let at = 20 * 60_000 + 7_500;
        assert_eq!(
            check("sum by (job) (rate(http_requests_total[5m]))", at),
            vec![(r#"[("job", "api")]"#.to_string(), 3.0)]
        );
        assert_eq!(check("up == 0", at).len(), 1);
        assert_eq!(
            check("up == bool 0", at)
                .iter()
                .map(|(_, v)| *v)
                .collect::<Vec<_>>(),
            vec![0.0, 1.0]
        );
        assert_eq!(check("count(up)", at)[0].1, 2.0);
        assert_eq!(
            check(
                r#"rate(http_requests_total[5m]) > 1.5 and on (instance) up == 0"#,
                at
            )
            .len(),
            1
        );
        assert_eq!(
            check(
                r#"up unless on (instance) rate(http_requests_total[5m]) > 1.5"#,
                at
            )
            .len(),
            1
        );
        assert_eq!(check("time()", at)[0].1, at as f64 / 1000.0);
        assert_eq!(
            check(r#"{__name__=~"up|http_requests_total", instance="a"}"#, at).len(),
            2
        );
        assert_eq!(check(r#"{__name__=~"up.*", __name__!="up"}"#, at).len(), 0);
    }

    #[test]
    fn regression_clamp_round_and_absent() {
        let at = 20 * 60_000 + 7_500;
        // Counter a grows 1/s: deriv 1, and in an hour it will have grown by 3600 from now's fit.
        let deriv = check(r#"deriv(http_requests_total{instance="a"}[10m])"#, at);
        assert_eq!(deriv[0].1, 1.0);
        let predicted = check(
            r#"predict_linear(http_requests_total{instance="a"}[10m], 3600)"#,
            at,
        );
        assert_eq!(predicted[0].1, at as f64 / 1000.0 + 3600.0);
        assert_eq!(
            check(r#"clamp_max(rate(http_requests_total[5m]), 1.5)"#, at)
                .iter()
                .map(|x| x.1)
                .collect::<Vec<_>>(),
            vec![1.0, 1.5]
        );
        assert_eq!(
            check(r#"round(rate(http_requests_total[5m]) / 4, 0.5)"#, at)
                .iter()
                .map(|x| x.1)
                .collect::<Vec<_>>(),
            vec![0.5, 0.5]
        );
        assert_eq!(
            check(r#"absent(nosuch{job="api"})"#, at),
            vec![(r#"[("job", "api")]"#.to_string(), 1.0)]
        );
        assert!(check(r#"absent(up{job="api"})"#, at).is_empty());
        assert_eq!(check(r#"absent_over_time(nosuch[5m])"#, at).len(), 1);
        assert_eq!(
            check(r#"stddev_over_time(up{instance="a"}[5m])"#, at)[0].1,
            0.0
        );
    }

    #[test]
    fn topk_quantile_and_count_values() {
        let at = 20 * 60_000 + 7_500;
        let top = check("topk(1, rate(http_requests_total[5m]))", at);
        assert_eq!(
            top,
            vec![(r#"[("instance", "b"), ("job", "api")]"#.to_string(), 2.0)]
        );
        assert_eq!(check("bottomk(1, up)", at)[0].1, 0.0);
        assert_eq!(
            check("quantile(0.5, rate(http_requests_total[5m]))", at)[0].1,
            1.5
        );
        assert_eq!(check(r#"count_values("v", up)"#, at).len(), 2);
        assert_eq!(quantile(0.9, &[1.0, 2.0, 3.0, 4.0, 5.0]), 4.6);
    }

    #[test]
    fn group_left_copies_labels_from_the_one_side() {
        let at = 20 * 60_000 + 7_500;
        // Each rate (many side, by instance) joined with a one-side series per job.
        let joined = check(
            r#"rate(http_requests_total[5m]) * on (job) group_left (team) label_set_is_missing"#,
            at,
        );
        assert!(joined.is_empty(), "no one-side series, no result");
        let joined = check(
            r#"rate(http_requests_total[5m]) * on (instance) group_left () up"#,
            at,
        );
        assert_eq!(
            joined.iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![1.0, 0.0]
        );
        let parsed =
            promql_parser::parser::parse("rate(http_requests_total[5m]) * on (job) group_left up")
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(eval(&history(), &parsed, at).is_err_and(|e| e.contains("many-to-many")));
    }

    #[test]
    fn stale_and_old_samples_drop_out_of_instant_selectors() {
        // Last sample at 30 min; five minutes later it is out of the lookback window.
        assert_eq!(check("up", 30 * 60_000 + 4 * 60_000).len(), 2);
        assert!(check("up", 30 * 60_000 + 5 * 60_000).is_empty());
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let parsed =
            promql_parser::parser::parse("label_replace(up, \"a\", \"$1\", \"job\", \"(.*)\")")
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(eval(&history(), &parsed, 0).is_err_and(|e| e.contains("label_replace")));
        let parsed = promql_parser::parser::parse("histogram_quantile(0.9, up)")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(eval(&history(), &parsed, 0).is_err_and(|e| e.contains("histogram_quantile")));
    }
}
