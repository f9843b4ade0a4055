//! Aggregation operators (`sum by (job) (...)` and the rest) and the quantile they share with
//! `quantile_over_time`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::binary::signature;
use super::{AGGREGATIONS, Context, LabelSet, Value, summation, unwrap_parens};

impl Context<'_> {
    pub(super) fn aggregate(&self, agg: &AggregateExpr, ts: i64) -> Result<Value, String> {
        let op = agg.op.to_string();
        if !AGGREGATIONS.contains(&op.as_str()) {
            return Err(format!("aggregation `{op}` is not supported"));
        }
        let Value::Vector(input) = self.eval(&agg.expr, ts)? else {
            return Err(format!("{op}(): expected an instant vector"));
        };
        if let Some(param) = &agg.param {
            return self.aggregate_with_parameter(&op, param, &agg.modifier, input, ts);
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
            out.push((labels, reduce_group(&op, &values)?));
        }
        Ok(Value::Vector(out))
    }

    /// topk, bottomk (keep whole series, labels included), quantile and count_values.
    fn aggregate_with_parameter(
        &self,
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
                let k = self.scalar_arg(Some(param), ts, op)?;
                let k = if k.is_finite() && k >= 1.0 {
                    k as usize
                } else {
                    0
                };
                let mut out = Vec::new();
                for (_, mut members) in groups {
                    let descending = op == "topk";
                    members.sort_by(|a, b| rank_nan_last(a.1, b.1, descending));
                    members.truncate(k);
                    out.extend(members);
                }
                Ok(Value::Vector(out))
            }
            "quantile" => {
                let q = self.scalar_arg(Some(param), ts, op)?;
                let out = groups
                    .into_iter()
                    .map(|(labels, members)| {
                        let mut values: Vec<f64> = members.into_iter().map(|m| m.1).collect();
                        (labels, quantile(q, &mut values))
                    })
                    .collect();
                Ok(Value::Vector(out))
            }
            "count_values" => {
                let Expr::StringLiteral(label) = unwrap_parens(param) else {
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
            other => Err(format!("{other}(): does not take a parameter")),
        }
    }
}

/// One group's value for the aggregations without a parameter, with Prometheus' numerics:
/// compensated sums, an overflow-safe mean and Welford's variance. A group is never empty.
fn reduce_group(op: &str, values: &[f64]) -> Result<f64, String> {
    let values_iter = || values.iter().copied();
    Ok(match op {
        "sum" => summation::sum(values_iter()),
        "avg" => summation::mean_of_group(values_iter()).unwrap_or(f64::NAN),
        "min" => extreme(values, |value, kept| value < kept),
        "max" => extreme(values, |value, kept| value > kept),
        "count" => values.len() as f64,
        "group" => 1.0,
        "stdvar" => summation::variance_of_group(values_iter()).unwrap_or(f64::NAN),
        "stddev" => summation::variance_of_group(values_iter()).map_or(f64::NAN, f64::sqrt),
        other => return Err(format!("{other}(): expected a parameter")),
    })
}

/// `min` or `max` as Prometheus keeps it: a value replaces the kept one when `wins`, and any
/// value replaces a NaN, so NaN comes out only when every value is NaN.
fn extreme(values: &[f64], wins: fn(f64, f64) -> bool) -> f64 {
    values
        .iter()
        .copied()
        .reduce(|kept, value| {
            if kept.is_nan() || wins(value, kept) {
                value
            } else {
                kept
            }
        })
        .unwrap_or(f64::NAN)
}

/// The order of `topk` (descending) and `bottomk` (ascending): NaN ranks last either way,
/// because Prometheus' selection heaps drop a NaN before any number.
fn rank_nan_last(a: f64, b: f64, descending: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if descending => b.total_cmp(&a),
        _ => a.total_cmp(&b),
    }
}

/// Prometheus' quantile: linear interpolation between ranks, -Inf/+Inf outside [0, 1]. The
/// values are sorted here with NaN lowest, as Prometheus' `vectorByValueHeap` orders them, so a
/// NaN shifts the ranks rather than being skipped.
pub(super) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let sorted = &*values;
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

/// The labels that group an aggregation: `by` keeps the listed ones, `without` drops them (and
/// the name), no modifier groups everything together.
fn grouping(labels: &LabelSet, modifier: &Option<LabelModifier>) -> LabelSet {
    match modifier {
        None => Vec::new(),
        Some(modifier) => signature(labels, Some(modifier)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

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
        assert_eq!(quantile(0.9, &mut [5.0, 2.0, 3.0, 4.0, 1.0]), 4.6);
    }

    #[test]
    fn sum_and_avg_are_compensated_and_do_not_overflow() {
        let history = instant_history("m", &[2.0, 8.0, 1e100, -1e100]);
        assert_eq!(exact_values(&history, "sum(m)", 0), vec![10.0]);
        assert_eq!(exact_values(&history, "avg(m)", 0), vec![2.5]);
        let history = instant_history("m", &[1.7e308, 1.7e308, 1.6e308]);
        let avg = exact_values(&history, "avg(m)", 0);
        assert!(avg[0].is_finite(), "{avg:?}");
        assert!((avg[0] - 1.6666666666666667e308).abs() < 1e294, "{avg:?}");
        assert_eq!(exact_values(&history, "sum(m)", 0), vec![f64::INFINITY]);
    }

    #[test]
    fn stddev_and_stdvar_of_identical_values_are_exactly_zero() {
        let history = instant_history("m", &[0.1; 7]);
        assert_eq!(exact_values(&history, "stdvar(m)", 0), vec![0.0]);
        assert_eq!(exact_values(&history, "stddev(m)", 0), vec![0.0]);
        let history = instant_history("m", &[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(exact_values(&history, "stddev(m)", 0), vec![2.0]);
    }

    #[test]
    fn topk_and_bottomk_rank_nan_last() {
        let history = instant_history("m", &[f64::NAN, 1.0, 3.0, -f64::NAN, 2.0]);
        assert_eq!(exact_values(&history, "topk(2, m)", 0), vec![3.0, 2.0]);
        assert_eq!(exact_values(&history, "bottomk(2, m)", 0), vec![1.0, 2.0]);
        // NaN is taken only when there are not enough numbers, and then it comes last.
        let top = exact_values(&history, "topk(4, m)", 0);
        assert_eq!(top[..3], [3.0, 2.0, 1.0]);
        assert!(top[3].is_nan());
        let bottom = exact_values(&history, "bottomk(4, m)", 0);
        assert_eq!(bottom[..3], [1.0, 2.0, 3.0]);
        assert!(bottom[3].is_nan());
    }

    #[test]
    fn quantile_sorts_nan_as_the_lowest_value() {
        // Sorted: NaN, 1, 2, 3; the median lies between 1 and 2, and the maximum is 3.
        let history = instant_history("m", &[3.0, f64::NAN, 1.0, 2.0]);
        assert_eq!(exact_values(&history, "quantile(0.5, m)", 0), vec![1.5]);
        assert_eq!(exact_values(&history, "quantile(1, m)", 0), vec![3.0]);
        assert!(exact_values(&history, "quantile(0, m)", 0)[0].is_nan());
        assert_eq!(quantile(0.5, &mut [-f64::NAN, 1.0, 2.0]), 1.0);
    }

    #[test]
    fn min_and_max_skip_nan_unless_every_value_is_nan() {
        let history = instant_history("m", &[f64::NAN, 3.0, f64::NAN, 1.0]);
        assert_eq!(exact_values(&history, "min(m)", 0), vec![1.0]);
        assert_eq!(exact_values(&history, "max(m)", 0), vec![3.0]);
        let history = instant_history("m", &[f64::NAN, f64::NAN]);
        assert!(exact_values(&history, "max(m)", 0)[0].is_nan());
        assert!(exact_values(&history, "min(m)", 0)[0].is_nan());
    }
}
