//! Subqueries: an instant expression evaluated at steps aligned to absolute time.

use std::collections::BTreeMap;

use promql_parser::parser::SubqueryExpr;

use super::{
    Context, LabelSet, MAX_SUBQUERY_STEPS, RangeVector, Samples, Value, Window, duration_ms,
};

impl Context<'_> {
    /// Evaluates the inner expression at every multiple of the step in `(end - range, end]`:
    /// Prometheus aligns subquery steps to absolute time, not to the evaluation time.
    pub(super) fn subquery(
        &self,
        sq: &SubqueryExpr,
        ts: i64,
    ) -> Result<(RangeVector, Window), String> {
        let end = self.selector_time(&sq.at, &sq.offset, ts);
        let width = duration_ms(sq.range);
        let step = sq
            .step
            .map_or(self.options.default_subquery_step_ms, duration_ms);
        if step <= 0 {
            return Err(format!("subquery `{sq}`: the step must be positive"));
        }
        if width / step > MAX_SUBQUERY_STEPS {
            return Err(format!(
                "subquery `{sq}` has more than {MAX_SUBQUERY_STEPS} steps"
            ));
        }
        let start = end.saturating_sub(width);
        let mut t = start.div_euclid(step) * step;
        if t <= start {
            t = t.saturating_add(step);
        }
        let mut series: BTreeMap<LabelSet, Samples> = BTreeMap::new();
        while t <= end {
            self.interrupt.check()?;
            match self.eval(&sq.expr, t)? {
                Value::Vector(v) => {
                    for (labels, value) in v {
                        series.entry(labels).or_default().push((t, value));
                    }
                }
                _ => return Err(format!("subquery `{sq}`: expected an instant vector")),
            }
            // At the end of time the next step does not exist; stop rather than wrap around.
            let Some(next) = t.checked_add(step) else {
                break;
            };
            t = next;
        }
        Ok((series.into_iter().collect(), Window { end, width }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{EvalOptions, Value, eval, eval_with};

    #[test]
    fn subquery_steps_are_aligned_to_absolute_time() {
        let steps = |expr: &str, ts: i64| -> Vec<i64> {
            match eval(&history(), &parse(expr), ts) {
                Ok(Value::Matrix(m)) => m[0].1.iter().map(|s| s.0 / 1000).collect(),
                other => panic!("{expr}: {other:?}"),
            }
        };
        // (15m07.5s, 20m07.5s]: multiples of a minute after the start.
        assert_eq!(
            steps(r#"up{instance="a"}[5m:1m]"#, AT),
            vec![960, 1020, 1080, 1140, 1200]
        );
        // Left-open: at exactly 20m the step at 15m is out.
        assert_eq!(
            steps(r#"up{instance="a"}[5m:1m]"#, 20 * 60_000),
            vec![960, 1020, 1080, 1140, 1200]
        );
        assert_eq!(
            steps(r#"up{instance="a"}[5m:1m] offset 30s"#, 20 * 60_000),
            vec![900, 960, 1020, 1080, 1140]
        );
        assert_eq!(
            steps(r#"up{instance="a"}[2m:1m] @ 600"#, AT),
            vec![540, 600]
        );
        // A missing step is the default evaluation interval, a parameter.
        let options = EvalOptions {
            default_subquery_step_ms: 30_000,
            ..EvalOptions::default()
        };
        let count = eval_with(
            &history(),
            &parse(r#"count_over_time(up{instance="a"}[5m:])"#),
            AT,
            &options,
        );
        assert_eq!(
            count,
            Ok(Value::Vector(vec![(
                vec![
                    ("instance".into(), "a".into()),
                    ("job".into(), "api".into())
                ],
                10.0
            )]))
        );
        assert_eq!(
            values(r#"count_over_time(up{instance="a"}[5m:])"#, AT),
            vec![5.0]
        );
    }

    #[test]
    fn range_functions_accept_subqueries() {
        assert_eq!(
            values("max_over_time(rate(http_requests_total[5m])[30m:1m])", AT),
            vec![1.0, 2.0]
        );
        // Steps before the first sample have no value; 0m..20m is 21 steps.
        assert_eq!(
            values(r#"count_over_time(up{instance="a"}[30m:1m])"#, AT),
            vec![21.0]
        );
        // A counter sampled by a subquery still rates to 1/s, extrapolated to the window.
        assert_eq!(
            values(
                r#"rate(http_requests_total{instance="a"}[5m:1m])"#,
                20 * 60_000
            ),
            vec![1.0]
        );
        assert_eq!(
            values(
                r#"max_over_time((http_requests_total{instance="a"} @ end())[5m:1m])"#,
                AT
            ),
            vec![1200.0]
        );
        assert_eq!(
            values(
                r#"min_over_time(deriv(http_requests_total{instance="a"}[5m])[10m:])"#,
                AT
            ),
            vec![1.0]
        );
    }
}
