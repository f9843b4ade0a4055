//! Function calls: dispatch through the function table, the functions that need more than one
//! series at a time, and the per-series reductions behind the `*_over_time` functions.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr, VectorSelector};

use super::aggregate::quantile;
use super::histogram::histogram_quantile;
use super::labels::{label_join, label_replace, label_replace_regex, string_arg};
use super::rate::linear_regression;
use super::{
    Context, Implementation, LabelSet, SpecialFunction, Value, drop_name, function, summation,
    unsupported_function, unwrap_parens,
};

impl Context<'_> {
    pub(super) fn call(&self, call: &Call, ts: i64) -> Result<Value, String> {
        let name = call.func.name;
        let Some(implementation) = function(name) else {
            return Err(unsupported_function(name));
        };
        let args: Vec<&Expr> = call.args.args.iter().map(|a| unwrap_parens(a)).collect();
        let value = match implementation {
            Implementation::Elementwise(f) => Value::Vector(
                self.vector_arg(&args, 0, name, ts)?
                    .into_iter()
                    .map(|(l, x)| (drop_name(l), f(x)))
                    .collect(),
            ),
            Implementation::OverTime(f) => {
                let Some(arg) = args.first() else {
                    return Err(format!("{name}(): expected a range vector argument"));
                };
                let (series, window) = self.range_vector(arg, ts)?;
                Value::Vector(
                    series
                        .into_iter()
                        .filter_map(|(l, s)| f(&s, window).map(|v| (drop_name(l), v)))
                        .collect(),
                )
            }
            Implementation::Calendar(f) => {
                let input = if args.is_empty() {
                    vec![(Vec::new(), ts as f64 / 1000.0)]
                } else {
                    self.vector_arg(&args, 0, name, ts)?
                };
                Value::Vector(
                    input
                        .into_iter()
                        .map(|(l, x)| (drop_name(l), civil_time(x).map_or(f64::NAN, |d| f(&d))))
                        .collect(),
                )
            }
            Implementation::Special(special) => self.special(special, name, &args, ts)?,
        };
        // Dropping the name or rewriting labels can merge series; Prometheus refuses the result.
        if let Value::Vector(v) = &value {
            let mut seen = BTreeSet::new();
            if !v.iter().all(|(labels, _)| seen.insert(labels)) {
                return Err(format!(
                    "{name}(): vector cannot contain metrics with the same labelset"
                ));
            }
        }
        Ok(value)
    }

    fn special(
        &self,
        special: SpecialFunction,
        name: &str,
        args: &[&Expr],
        ts: i64,
    ) -> Result<Value, String> {
        let scalar = |index: usize| self.scalar_arg(args.get(index).copied(), ts, name);
        let vector = |index: usize| self.vector_arg(args, index, name, ts);
        let range = |index: usize| match args.get(index) {
            Some(arg) => self.range_vector(arg, ts),
            None => Err(format!("{name}(): expected a range vector argument")),
        };
        let map = |index: usize, f: &dyn Fn(f64) -> f64| -> Result<Value, String> {
            Ok(Value::Vector(
                vector(index)?
                    .into_iter()
                    .map(|(l, x)| (drop_name(l), f(x)))
                    .collect(),
            ))
        };
        let value = match special {
            SpecialFunction::Absent | SpecialFunction::AbsentOverTime => {
                let present = if matches!(special, SpecialFunction::Absent) {
                    !vector(0)?.is_empty()
                } else {
                    !range(0)?.0.is_empty()
                };
                let labels = match args.first() {
                    Some(Expr::VectorSelector(vs)) => absent_labels(vs),
                    Some(Expr::MatrixSelector(ms)) => absent_labels(&ms.vs),
                    _ => Vec::new(),
                };
                Value::Vector(if present {
                    Vec::new()
                } else {
                    vec![(labels, 1.0)]
                })
            }
            // Keeps the metric name, as Prometheus does.
            SpecialFunction::LastOverTime => Value::Vector(
                range(0)?
                    .0
                    .into_iter()
                    .filter_map(|(l, s)| s.last().map(|x| (l, x.1)))
                    .collect(),
            ),
            SpecialFunction::QuantileOverTime => {
                let q = scalar(0)?;
                Value::Vector(
                    range(1)?
                        .0
                        .into_iter()
                        .map(|(l, s)| {
                            let mut values: Vec<f64> = s.into_iter().map(|x| x.1).collect();
                            (drop_name(l), quantile(q, &mut values))
                        })
                        .collect(),
                )
            }
            SpecialFunction::PredictLinear => {
                let seconds = scalar(1)?;
                Value::Vector(
                    range(0)?
                        .0
                        .into_iter()
                        .filter_map(|(l, s)| {
                            let (slope, intercept) = linear_regression(&s, ts)?;
                            Some((drop_name(l), intercept + slope * seconds))
                        })
                        .collect(),
                )
            }
            SpecialFunction::Clamp => {
                let (low, high) = (scalar(1)?, scalar(2)?);
                if low > high {
                    Value::Vector(Vec::new())
                } else {
                    map(0, &|x| x.max(low).min(high))?
                }
            }
            SpecialFunction::ClampMin => {
                let low = scalar(1)?;
                map(0, &|x| x.max(low))?
            }
            SpecialFunction::ClampMax => {
                let high = scalar(1)?;
                map(0, &|x| x.min(high))?
            }
            SpecialFunction::Round => {
                let to = if args.len() > 1 { scalar(1)? } else { 1.0 };
                // Prometheus rounds half up through the inverse, which matters for 0.1 and such.
                let inverse = 1.0 / to;
                map(0, &|x| (x * inverse + 0.5).floor() / inverse)?
            }
            SpecialFunction::Time => Value::Scalar(ts as f64 / 1000.0),
            SpecialFunction::Pi => Value::Scalar(std::f64::consts::PI),
            SpecialFunction::Vector => Value::Vector(vec![(Vec::new(), scalar(0)?)]),
            SpecialFunction::Scalar => {
                let v = vector(0)?;
                Value::Scalar(match v.as_slice() {
                    [(_, x)] => *x,
                    _ => f64::NAN,
                })
            }
            SpecialFunction::Timestamp => match args.first() {
                // A selector's samples carry their own time; anything computed is "now".
                Some(Expr::VectorSelector(vs)) => Value::Vector(
                    self.instant(vs, ts)
                        .into_iter()
                        .map(|(l, t, _)| (drop_name(l), t as f64 / 1000.0))
                        .collect(),
                ),
                _ => map(0, &|_| ts as f64 / 1000.0)?,
            },
            SpecialFunction::HistogramQuantile => {
                let q = scalar(0)?;
                Value::Vector(histogram_quantile(q, vector(1)?))
            }
            SpecialFunction::LabelReplace => {
                let input = vector(0)?;
                let [destination, replacement, source, pattern] =
                    [1, 2, 3, 4].map(|i| string_arg(args.get(i).copied(), name));
                let (destination, replacement, source) = (destination?, replacement?, source?);
                let pattern = label_replace_regex(pattern?)?;
                Value::Vector(label_replace(
                    input,
                    destination,
                    replacement,
                    source,
                    &pattern,
                ))
            }
            SpecialFunction::LabelJoin => {
                let input = vector(0)?;
                let destination = string_arg(args.get(1).copied(), name)?;
                let separator = string_arg(args.get(2).copied(), name)?;
                let sources = args
                    .iter()
                    .skip(3)
                    .map(|a| string_arg(Some(a), name))
                    .collect::<Result<Vec<_>, _>>()?;
                Value::Vector(label_join(input, destination, separator, &sources))
            }
            SpecialFunction::Sort | SpecialFunction::SortDesc => {
                let mut v = vector(0)?;
                let descending = matches!(special, SpecialFunction::SortDesc);
                // NaN sorts last either way, as in Prometheus.
                v.sort_by(|a, b| match (a.1.is_nan(), b.1.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if descending => b.1.total_cmp(&a.1),
                    _ => a.1.total_cmp(&b.1),
                });
                Value::Vector(v)
            }
        };
        Ok(value)
    }

    fn vector_arg(
        &self,
        args: &[&Expr],
        index: usize,
        function: &str,
        ts: i64,
    ) -> Result<Vec<(LabelSet, f64)>, String> {
        match args.get(index).map(|a| self.eval(a, ts)).transpose()? {
            Some(Value::Vector(v)) => Ok(v),
            _ => Err(format!("{function}(): expected an instant vector argument")),
        }
    }

    /// The value of a scalar argument (a number or an expression that yields one).
    pub(super) fn scalar_arg(
        &self,
        arg: Option<&Expr>,
        ts: i64,
        function: &str,
    ) -> Result<f64, String> {
        match arg.map(|a| self.eval(a, ts)).transpose()? {
            Some(Value::Scalar(v)) => Ok(v),
            _ => Err(format!("{function}(): expected a scalar argument")),
        }
    }
}

/// The UTC date and time of `seconds` since the epoch, truncated to whole seconds as
/// Prometheus' `time.Unix(int64(v), 0)` does; `None` for NaN, infinities and far-off years.
fn civil_time(seconds: f64) -> Option<jiff::civil::DateTime> {
    if !seconds.is_finite() {
        return None;
    }
    let timestamp = jiff::Timestamp::from_second(seconds as i64).ok()?;
    Some(timestamp.to_zoned(jiff::tz::TimeZone::UTC).datetime())
}

/// Prometheus' `sgn`: -1, 1, or the value itself for zeros and NaN.
pub(super) fn sgn(x: f64) -> f64 {
    if x < 0.0 {
        -1.0
    } else if x > 0.0 {
        1.0
    } else {
        x
    }
}

/// The labels `absent()` returns: the selector's equality matchers except the name; a label
/// matched twice is left out, Prometheus' historic behaviour.
fn absent_labels(vs: &VectorSelector) -> LabelSet {
    let mut labels: BTreeMap<String, Option<String>> = BTreeMap::new();
    for m in &vs.matchers.matchers {
        if m.name == "__name__" {
            continue;
        }
        let equal = matches!(m.op, MatchOp::Equal).then(|| m.value.clone());
        labels
            .entry(m.name.clone())
            .and_modify(|seen| *seen = None)
            .or_insert(equal);
    }
    labels
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// Value changes, where NaN followed by NaN is no change.
pub(super) fn changes(samples: &[(i64, f64)]) -> f64 {
    samples
        .windows(2)
        .filter(|w| w[0].1 != w[1].1 && !(w[0].1.is_nan() && w[1].1.is_nan()))
        .count() as f64
}

pub(super) fn resets(samples: &[(i64, f64)]) -> f64 {
    samples.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64
}

/// `avg_over_time`, with Prometheus' compensated, overflow-safe mean.
pub(super) fn mean(samples: &[(i64, f64)]) -> Option<f64> {
    summation::mean_over_time(samples.iter().map(|x| x.1))
}

/// The minimum or maximum; a NaN is replaced by any real value, as in Prometheus.
pub(super) fn extreme(samples: &[(i64, f64)], pick: fn(f64, f64) -> f64) -> Option<f64> {
    samples.iter().map(|x| x.1).reduce(|a, b| {
        if a.is_nan() {
            b
        } else if b.is_nan() {
            a
        } else {
            pick(a, b)
        }
    })
}

/// Population variance, as `stdvar_over_time`: compensated Welford, so identical samples give
/// exactly 0.
pub(super) fn variance(samples: &[(i64, f64)]) -> Option<f64> {
    summation::variance_over_time(samples.iter().map(|x| x.1))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

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

    /// A gauge sampled every 15 s from 0 s with `values`.
    fn gauge(values: &[f64]) -> crate::history::History {
        let samples: Vec<(i64, f64)> = (0..)
            .map(|i: i64| i * 15_000)
            .zip(values.iter().copied())
            .collect();
        series_history("g", crate::model::MetricKind::Gauge, &samples)
    }

    #[test]
    fn sum_and_avg_over_time_are_compensated_and_do_not_overflow() {
        let at = 45_000;
        let history = gauge(&[2.0, 8.0, 1e100, -1e100]);
        assert_eq!(
            exact_values(&history, "sum_over_time(g[1m])", at),
            vec![10.0]
        );
        assert_eq!(
            exact_values(&history, "avg_over_time(g[1m])", at),
            vec![2.5]
        );
        let history = gauge(&[1.7e308, 1.7e308, 1.6e308]);
        let avg = exact_values(&history, "avg_over_time(g[1m])", at);
        assert!((avg[0] - 1.6666666666666667e308).abs() < 1e294, "{avg:?}");
    }

    #[test]
    fn quantile_over_time_sorts_nan_as_the_lowest_value() {
        let history = gauge(&[3.0, f64::NAN, 1.0, 2.0]);
        let median = exact_values(&history, "quantile_over_time(0.5, g[1m])", 45_000);
        assert_eq!(median, vec![1.5]);
    }

    #[test]
    fn stddev_and_stdvar_over_time_of_identical_samples_are_exactly_zero() {
        let history = gauge(&[0.1; 4]);
        for f in ["stddev_over_time", "stdvar_over_time"] {
            assert_eq!(
                exact_values(&history, &format!("{f}(g[1m])"), 45_000),
                vec![0.0],
                "{f}"
            );
        }
    }

    #[test]
    fn sort_orders_by_value_with_nan_last() {
        assert_eq!(
            values("sort_desc(rate(http_requests_total[5m]))", AT),
            vec![2.0, 1.0]
        );
        assert_eq!(
            values("sort(rate(http_requests_total[5m]))", AT),
            vec![1.0, 2.0]
        );
        let nan_last = values("sort(up / 0)", AT);
        assert_eq!(nan_last[0], f64::INFINITY);
        assert!(nan_last[1].is_nan());
        let nan_last = values("sort_desc(up / 0)", AT);
        assert!(nan_last[1].is_nan());
    }

    #[test]
    fn timestamp_reads_the_selected_sample_time() {
        // The newest sample before 20m07.5s is at 20m.
        assert_eq!(
            check(r#"timestamp(up{instance="a"})"#, AT),
            vec![(r#"[("instance", "a"), ("job", "api")]"#.to_string(), 1200.0)]
        );
        assert_eq!(
            values(r#"timestamp(up{instance="a"} offset 1m)"#, AT),
            vec![1140.0]
        );
        assert_eq!(
            values(r#"timestamp((up{instance="a"} @ 600.5))"#, AT),
            vec![600.0]
        );
        // A computed vector is stamped with the evaluation time.
        assert_eq!(values("timestamp(vector(1))", AT), vec![1207.5]);
    }

    #[test]
    fn range_functions_over_samples() {
        // Samples at 19m15s..20m: 1155, 1170, 1185, 1200.
        let a = r#"http_requests_total{instance="a"}[1m]"#;
        assert_eq!(
            values(&format!("quantile_over_time(0.5, {a})"), AT),
            vec![1177.5]
        );
        assert_eq!(
            values(&format!("quantile_over_time(0, {a})"), AT),
            vec![1155.0]
        );
        assert_eq!(values(&format!("stdvar_over_time({a})"), AT), vec![281.25]);
        assert_eq!(
            values(&format!("stddev_over_time({a})"), AT),
            vec![(281.25f64.sqrt() * 1e9).round() / 1e9]
        );
        assert_eq!(values(&format!("idelta({a})"), AT), vec![15.0]);
        assert_eq!(values(&format!("present_over_time({a})"), AT), vec![1.0]);
        // last_over_time keeps the name; the other range functions drop it.
        assert_eq!(
            check(&format!("last_over_time({a})"), AT)[0].0,
            r#"[("__name__", "http_requests_total"), ("instance", "a"), ("job", "api")]"#
        );
        assert_eq!(
            check(&format!("idelta({a})"), AT)[0].0,
            r#"[("instance", "a"), ("job", "api")]"#
        );
    }

    #[test]
    fn scalar_vector_time_and_math_functions() {
        assert!(
            values("scalar(up)", AT)[0].is_nan(),
            "two elements give NaN"
        );
        assert_eq!(values(r#"scalar(up{instance="a"})"#, AT), vec![1.0]);
        assert!(values("scalar(nosuch)", AT)[0].is_nan());
        assert_eq!(
            check("vector(time())", AT),
            vec![("[]".to_string(), 1207.5)]
        );
        assert_eq!(values("sgn(vector(-3))", AT), vec![-1.0]);
        assert_eq!(values("sgn(vector(0))", AT), vec![0.0]);
        assert_eq!(values("exp(vector(0))", AT), vec![1.0]);
        assert_eq!(values("ln(vector(1))", AT), vec![0.0]);
        assert_eq!(values("log2(vector(8))", AT), vec![3.0]);
        assert_eq!(values("log10(vector(1000))", AT), vec![3.0]);
        assert_eq!(values("sqrt(vector(16))", AT), vec![4.0]);
        assert!(values("sqrt(vector(-1))", AT)[0].is_nan());
        assert_eq!(values("round(vector(0.25), 0.1)", AT), vec![0.3]);
        assert_eq!(values("vector(8) atan2 vector(0)", AT).len(), 1);
    }

    #[test]
    fn calendar_functions_read_utc() {
        // 1970-01-01 was a Thursday; 2024-02-29 12:34:56 UTC is 1709210096.
        assert_eq!(values("day_of_week(vector(0))", AT), vec![4.0]);
        assert_eq!(values("days_in_month(vector(1709210096))", AT), vec![29.0]);
        assert_eq!(values("day_of_month(vector(1709210096))", AT), vec![29.0]);
        assert_eq!(values("day_of_year(vector(1709210096))", AT), vec![60.0]);
        assert_eq!(values("month(vector(1709210096))", AT), vec![2.0]);
        assert_eq!(values("year(vector(1709210096))", AT), vec![2024.0]);
        assert_eq!(values("hour(vector(1709210096))", AT), vec![12.0]);
        assert_eq!(values("minute(vector(1709210096.9))", AT), vec![34.0]);
        // Without an argument: the evaluation time.
        assert_eq!(values("minute()", AT), vec![20.0]);
        assert!(values("year(vector(1/0))", AT)[0].is_nan());
    }

    #[test]
    fn regression_absent_drops_a_label_matched_twice() {
        assert_eq!(
            check(r#"absent(nosuch{job="api", job!="x", team="t"})"#, AT),
            vec![(r#"[("team", "t")]"#.to_string(), 1.0)]
        );
        assert_eq!(
            check(r#"absent_over_time(nosuch{job="api"}[5m:1m])"#, AT),
            vec![("[]".to_string(), 1.0)]
        );
    }
}
