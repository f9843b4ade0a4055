//! Reading the history: instant selectors with their lookback and staleness, range selectors
//! over left-open windows, and the time `@` and `offset` move a selector to.

use std::time::SystemTime;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use super::{
    Context, LOOKBACK_MS, LabelSet, RangeVector, Samples, SeriesSource, Window, duration_ms,
    unwrap_parens,
};
use crate::history::{History, SeriesRange};
use crate::model::{Labels, MetricKind, is_stale_marker};

impl Context<'_> {
    /// The time a selector or subquery reads at: `@` pins it, `offset` moves it back.
    pub(super) fn selector_time(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        ts: i64,
    ) -> i64 {
        let base = match at {
            None => ts,
            Some(AtModifier::Start) => self.query_start,
            Some(AtModifier::End) => self.query_end,
            Some(AtModifier::At(time)) => system_time_ms(*time),
        };
        // Saturating: an `@` near Prometheus' bounds with a negative offset must not wrap.
        base.saturating_sub(offset_ms(offset))
    }

    /// Samples with `start <= t <= end` of every series the selector matches, stale markers
    /// included.
    fn select(&self, vs: &VectorSelector, start: i64, end: i64) -> Vec<SeriesRange> {
        if self.loaded.get() > self.options.max_samples || self.interrupt.reason().is_some() {
            return Vec::new();
        }
        let ranges = self.history.select_matching(vs, start, end);
        let samples: usize = ranges.iter().map(|r| r.samples.len()).sum();
        self.loaded.set(self.loaded.get() + samples as u64);
        ranges
    }

    /// The newest sample `(labels, time, value)` of each matching series in the lookback
    /// window `(t - 5m, t]`, unless it is a staleness marker: that series has ended.
    pub(super) fn instant(&self, vs: &VectorSelector, ts: i64) -> Vec<(LabelSet, i64, f64)> {
        let at = self.selector_time(&vs.at, &vs.offset, ts);
        self.select(vs, at.saturating_sub(LOOKBACK_MS - 1), at)
            .into_iter()
            .filter_map(|range| {
                let (t, value) = *range.samples.last()?;
                (!is_stale_marker(value)).then(|| (pairs(&range.labels), t, value))
            })
            .collect()
    }

    /// A range selector's samples in `(end - range, end]` or a subquery's steps, with the window
    /// they cover; parentheses around either are allowed, as in Prometheus.
    pub(super) fn range_vector(
        &self,
        expr: &Expr,
        ts: i64,
    ) -> Result<(RangeVector, Window), String> {
        match unwrap_parens(expr) {
            Expr::MatrixSelector(ms) => {
                let end = self.selector_time(&ms.vs.at, &ms.vs.offset, ts);
                let width = duration_ms(ms.range);
                let series = self
                    .select(&ms.vs, end.saturating_sub(width - 1), end)
                    .into_iter()
                    .map(|range| {
                        let samples: Samples = range
                            .samples
                            .into_iter()
                            .filter(|(_, v)| !is_stale_marker(*v))
                            .collect();
                        (pairs(&range.labels), samples)
                    })
                    .filter(|(_, samples)| !samples.is_empty())
                    .collect();
                Ok((series, Window { end, width }))
            }
            Expr::Subquery(sq) => self.subquery(sq, ts),
            other => Err(format!(
                "expected a range selector such as x[5m] or a subquery, got `{other}`"
            )),
        }
    }
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => duration_ms(*d).saturating_neg(),
        None => 0,
    }
}

/// Milliseconds since the epoch; `@` may name a time before it.
fn system_time_ms(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => duration_ms(after),
        Err(before) => -duration_ms(before.duration()),
    }
}

impl SeriesSource for History {
    fn select_matching(&self, vs: &VectorSelector, start: i64, end: i64) -> Vec<SeriesRange> {
        metric_names(self, vs)
            .iter()
            .flat_map(|name| self.select(name, |labels| selects(vs, labels), start, end))
            .collect()
    }
}

/// The metric names a selector can read: its name, a `__name__="x"` matcher's value, or every
/// name in the history (histogram families under their `_bucket`, `_sum` and `_count` names),
/// which the matchers then filter like any other label.
fn metric_names(history: &History, vs: &VectorSelector) -> Vec<String> {
    if let Some(name) = &vs.name {
        return vec![name.clone()];
    }
    if let Some(m) = vs
        .matchers
        .matchers
        .iter()
        .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
    {
        return vec![m.value.clone()];
    }
    let mut names = Vec::new();
    for family in history.family_names() {
        names.push(family.to_string());
        if history
            .family(family)
            .is_some_and(|meta| meta.kind == MetricKind::Histogram)
        {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.push(format!("{family}{suffix}"));
            }
        }
    }
    names
}

/// Whether a series satisfies the selector: every plain matcher, and one of the `or` groups
/// when there are any (`{a="1" or b="2"}`). A missing label matches as the empty string.
fn selects(vs: &VectorSelector, labels: &Labels) -> bool {
    let all = |matchers: &[Matcher]| {
        matchers
            .iter()
            .all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
    };
    all(&vs.matchers.matchers)
        && (vs.matchers.or_matchers.is_empty()
            || vs.matchers.or_matchers.iter().any(|group| all(group)))
}

pub(super) fn pairs(labels: &Labels) -> LabelSet {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{EvalOptions, Value, eval_with};

    #[test]
    fn stale_and_old_samples_drop_out_of_instant_selectors() {
        // Last sample at 30 min; five minutes later it is out of the lookback window.
        assert_eq!(check("up", 30 * 60_000 + 4 * 60_000).len(), 2);
        assert!(check("up", 30 * 60_000 + 5 * 60_000).is_empty());
    }

    #[test]
    fn at_modifier_pins_selectors() {
        // Long after the history ends, `@` still reads the pinned time.
        let later = 2 * 60 * 60_000;
        assert_eq!(
            values(r#"http_requests_total{instance="a"} @ 300"#, later),
            vec![300.0]
        );
        assert_eq!(
            values(
                r#"http_requests_total{instance="a"} @ 360 offset 1m"#,
                later
            ),
            vec![300.0]
        );
        assert_eq!(
            values(
                r#"rate(http_requests_total{instance="a"}[5m] @ 600)"#,
                later
            ),
            vec![1.0]
        );
        assert_eq!(
            values(
                r#"predict_linear(http_requests_total{instance="a"}[5m] @ 600, 0)"#,
                later
            )
            .len(),
            1
        );
        // For an instant query start() and end() are the evaluation time.
        assert_eq!(values(r#"up{instance="a"} @ start()"#, AT), vec![1.0]);
        assert!(values(r#"up{instance="a"} @ end()"#, later).is_empty());
        // A range query passes its range: start() and end() are its edges at every step.
        let options = EvalOptions {
            query_range: Some((300_000, 600_000)),
            ..EvalOptions::default()
        };
        let a = r#"http_requests_total{instance="a"}"#;
        let expr = parse(&format!("scalar({a} @ start()) + scalar({a} @ end())"));
        let sum = eval_with(&history(), &expr, later, &options);
        assert_eq!(sum, Ok(Value::Scalar(900.0)));
    }

    #[test]
    fn selectors_without_a_name_and_or_matchers() {
        assert_eq!(check(r#"{job="api"}"#, AT).len(), 4);
        // Histogram series are found under their `_bucket` names.
        assert_eq!(check(r#"{job="web"}"#, AT).len(), 4);
        assert_eq!(check(r#"{__name__="up", instance="a"}"#, AT).len(), 1);
        assert_eq!(check(r#"up{instance="a" or instance="b"}"#, AT).len(), 2);
        assert_eq!(
            check(r#"{__name__="up", instance="a" or job="web", le="1"}"#, AT).len(),
            2
        );
        assert_eq!(
            check(r#"rate({__name__=~"http.*", instance="a"}[5m])"#, AT).len(),
            1
        );
        // `up` and `http_requests_total` collide once rate() drops the name, as in Prometheus.
        assert!(eval_error(r#"rate({job="api", instance="a"}[5m])"#).contains("same labelset"));
    }
}
