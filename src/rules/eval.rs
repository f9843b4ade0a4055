//! A PromQL evaluator over the history with Prometheus 3 semantics: left-open ranges, a
//! five-minute lookback, staleness markers honoured, subqueries aligned to absolute multiples of
//! their step, and the `@` modifier.
//!
//! An evaluation is an instant query, so `@ start()` and `@ end()` both stand for the evaluation
//! time, exactly as Prometheus treats them in an instant query; a caller evaluating a range query
//! step by step passes the range in [`EvalOptions::query_range`] instead. The history holds
//! float samples only, so native-histogram functions are refused. [`check_supported`] refuses at
//! load time whatever [`eval`] cannot evaluate, naming the construct, so an unsupported
//! expression is an error rather than a silently wrong answer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, Offset, SubqueryExpr,
    VectorMatchFillValues, VectorSelector,
};
use regex::Regex;

use crate::history::{History, SeriesRange};
use crate::model::{Labels, MetricKind, is_stale_marker};

/// Prometheus' default lookback for instant selectors.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// The step of a subquery written without one (`x[30m:]`) when the caller gives none; Prometheus
/// uses the global evaluation interval, whose default is one minute.
pub const DEFAULT_SUBQUERY_STEP_MS: i64 = 60 * 1000;

/// The most steps one subquery may evaluate, so that `x[1y:1s]` fails instead of running for
/// minutes inside the rule loop (Prometheus' own limit on points per series).
pub const MAX_SUBQUERY_STEPS: i64 = 11_000;

/// Sorted label pairs, `__name__` included when the series still has a name.
pub type LabelSet = Vec<(String, String)>;

/// Samples `(ms, value)` of one series.
pub type Samples = Vec<(i64, f64)>;

/// A range vector: series with their samples.
pub type RangeVector = Vec<(LabelSet, Samples)>;

/// An instant vector: series with one value each.
pub type InstantVector = Vec<(LabelSet, f64)>;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<(LabelSet, f64)>),
    Matrix(RangeVector),
}

/// What an evaluation needs beyond the expression and its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalOptions {
    /// Step of subqueries written without one; rule evaluation should pass its group's
    /// interval, which is what Prometheus uses.
    pub default_subquery_step_ms: i64,
    /// The start and end (ms) of a range query evaluated step by step, which `@ start()` and
    /// `@ end()` stand for; `None` for an instant query, where both are the evaluation time.
    pub query_range: Option<(i64, i64)>,
}

impl Default for EvalOptions {
    fn default() -> EvalOptions {
        EvalOptions {
            default_subquery_step_ms: DEFAULT_SUBQUERY_STEP_MS,
            query_range: None,
        }
    }
}

/// Evaluates `expr` at `ts` (milliseconds) over `history` with the default options.
pub fn eval(history: &History, expr: &Expr, ts: i64) -> Result<Value, String> {
    eval_with(history, expr, ts, &EvalOptions::default())
}

/// Evaluates `expr` as an instant query at `ts` (milliseconds) over `history`.
pub fn eval_with(
    history: &History,
    expr: &Expr,
    ts: i64,
    options: &EvalOptions,
) -> Result<Value, String> {
    let (query_start, query_end) = options.query_range.unwrap_or((ts, ts));
    let context = Context {
        history,
        query_start,
        query_end,
        options: *options,
    };
    context.eval(expr, ts)
}

/// Refuses, naming the construct, anything in `expr` that [`eval`] cannot evaluate, so rule
/// loading fails instead of a rule silently producing wrong results. Static arguments that can
/// only fail at evaluation (a `label_replace` regex, a label name) are checked here too.
pub fn check_supported(expr: &Expr) -> Result<(), String> {
    match expr {
        Expr::NumberLiteral(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_) => Ok(()),
        Expr::StringLiteral(_) => Err(format!(
            "string literal `{expr}` is only supported as a function argument"
        )),
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::Subquery(sq) => {
            if let Some(step) = sq.step
                && duration_ms(step) > 0
                && duration_ms(sq.range) / duration_ms(step) > MAX_SUBQUERY_STEPS
            {
                return Err(format!(
                    "subquery `{expr}` has more than {MAX_SUBQUERY_STEPS} steps"
                ));
            }
            check_supported(&sq.expr)
        }
        Expr::Aggregate(agg) => {
            let op = agg.op.to_string();
            if !AGGREGATIONS.contains(&op.as_str()) {
                return Err(format!("aggregation `{op}` is not supported (in `{expr}`)"));
            }
            match agg.param.as_deref() {
                Some(Expr::StringLiteral(_)) if op == "count_values" => {}
                Some(param) => check_supported(param)?,
                None => {}
            }
            check_supported(&agg.expr)
        }
        Expr::Binary(bin) => {
            if bin
                .modifier
                .as_ref()
                .is_some_and(|m| m.fill_values != VectorMatchFillValues::default())
            {
                return Err(format!(
                    "the fill modifiers are not supported (in `{expr}`)"
                ));
            }
            check_supported(&bin.lhs)?;
            check_supported(&bin.rhs)
        }
        Expr::Call(call) => {
            let name = call.func.name;
            if function(name).is_none() {
                return Err(unsupported_function(name));
            }
            if name == "label_replace" || name == "label_join" {
                check_label_arguments(call)?;
            }
            for arg in &call.args.args {
                if !matches!(unwrap_parens(arg), Expr::StringLiteral(_)) {
                    check_supported(arg)?;
                }
            }
            Ok(())
        }
        Expr::Extension(_) => Err(format!("extension `{expr}` is not supported")),
    }
}

/// The aggregation operators [`eval`] implements; `limitk` and `limit_ratio` are not among them.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stdvar",
    "stddev",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

/// How one function is evaluated. The table [`FUNCTIONS`] is the only list of supported
/// functions: `eval` dispatches through it and `check_supported` consults it, and the
/// `Special` variants are matched exhaustively, so the two cannot drift apart.
#[derive(Clone, Copy, Debug)]
enum Implementation {
    /// Applies to every value of an instant vector and drops the metric name.
    Elementwise(fn(f64) -> f64),
    /// Reduces each series of a range vector (selector or subquery) and drops the metric name;
    /// `None` leaves the series out.
    OverTime(RangeFunction),
    /// A UTC calendar field of each value read as Unix seconds, or of `time()` without an
    /// argument.
    Calendar(fn(&jiff::civil::DateTime) -> f64),
    /// Anything else, evaluated in [`Context::special`].
    Special(SpecialFunction),
}

#[derive(Clone, Copy, Debug)]
enum SpecialFunction {
    Absent,
    AbsentOverTime,
    LastOverTime,
    QuantileOverTime,
    PredictLinear,
    Clamp,
    ClampMin,
    ClampMax,
    Round,
    Time,
    Pi,
    Vector,
    Scalar,
    Timestamp,
    HistogramQuantile,
    LabelReplace,
    LabelJoin,
    Sort,
    SortDesc,
}

/// Reduces one series' samples in a window to a value, or to nothing.
type RangeFunction = fn(&[(i64, f64)], Window) -> Option<f64>;

/// Where a range function's samples come from.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// The end of the range after `offset` and `@`, to which `rate` extrapolates.
    end: i64,
    /// The width of the range.
    width: i64,
}

const FUNCTIONS: &[(&str, Implementation)] = {
    use Implementation::{Calendar, Elementwise, OverTime, Special};
    use SpecialFunction as S;
    &[
        ("abs", Elementwise(f64::abs)),
        ("ceil", Elementwise(f64::ceil)),
        ("floor", Elementwise(f64::floor)),
        ("exp", Elementwise(f64::exp)),
        ("ln", Elementwise(f64::ln)),
        ("log2", Elementwise(f64::log2)),
        ("log10", Elementwise(f64::log10)),
        ("sqrt", Elementwise(f64::sqrt)),
        ("sgn", Elementwise(sgn)),
        ("sin", Elementwise(f64::sin)),
        ("cos", Elementwise(f64::cos)),
        ("tan", Elementwise(f64::tan)),
        ("asin", Elementwise(f64::asin)),
        ("acos", Elementwise(f64::acos)),
        ("atan", Elementwise(f64::atan)),
        ("sinh", Elementwise(f64::sinh)),
        ("cosh", Elementwise(f64::cosh)),
        ("tanh", Elementwise(f64::tanh)),
        ("asinh", Elementwise(f64::asinh)),
        ("acosh", Elementwise(f64::acosh)),
        ("atanh", Elementwise(f64::atanh)),
        ("deg", Elementwise(f64::to_degrees)),
        ("rad", Elementwise(f64::to_radians)),
        ("rate", OverTime(|s, w| extrapolated(s, w, true, true))),
        ("increase", OverTime(|s, w| extrapolated(s, w, true, false))),
        ("delta", OverTime(|s, w| extrapolated(s, w, false, false))),
        ("irate", OverTime(|s, _| instant_change(s, true))),
        ("idelta", OverTime(|s, _| instant_change(s, false))),
        ("changes", OverTime(|s, _| Some(changes(s)))),
        ("resets", OverTime(|s, _| Some(resets(s)))),
        ("avg_over_time", OverTime(|s, _| mean(s))),
        (
            "sum_over_time",
            OverTime(|s, _| Some(s.iter().map(|x| x.1).sum())),
        ),
        ("min_over_time", OverTime(|s, _| extreme(s, f64::min))),
        ("max_over_time", OverTime(|s, _| extreme(s, f64::max))),
        ("count_over_time", OverTime(|s, _| Some(s.len() as f64))),
        ("present_over_time", OverTime(|_, _| Some(1.0))),
        (
            "stddev_over_time",
            OverTime(|s, _| variance(s).map(f64::sqrt)),
        ),
        ("stdvar_over_time", OverTime(|s, _| variance(s))),
        (
            "deriv",
            OverTime(|s, _| linear_regression(s, s.first()?.0).map(|(slope, _)| slope)),
        ),
        ("minute", Calendar(|d| d.minute().into())),
        ("hour", Calendar(|d| d.hour().into())),
        (
            "day_of_week",
            Calendar(|d| d.weekday().to_sunday_zero_offset().into()),
        ),
        ("day_of_month", Calendar(|d| d.day().into())),
        ("day_of_year", Calendar(|d| d.day_of_year().into())),
        ("days_in_month", Calendar(|d| d.days_in_month().into())),
        ("month", Calendar(|d| d.month().into())),
        ("year", Calendar(|d| d.year().into())),
        ("absent", Special(S::Absent)),
        ("absent_over_time", Special(S::AbsentOverTime)),
        ("last_over_time", Special(S::LastOverTime)),
        ("quantile_over_time", Special(S::QuantileOverTime)),
        ("predict_linear", Special(S::PredictLinear)),
        ("clamp", Special(S::Clamp)),
        ("clamp_min", Special(S::ClampMin)),
        ("clamp_max", Special(S::ClampMax)),
        ("round", Special(S::Round)),
        ("time", Special(S::Time)),
        ("pi", Special(S::Pi)),
        ("vector", Special(S::Vector)),
        ("scalar", Special(S::Scalar)),
        ("timestamp", Special(S::Timestamp)),
        ("histogram_quantile", Special(S::HistogramQuantile)),
        ("label_replace", Special(S::LabelReplace)),
        ("label_join", Special(S::LabelJoin)),
        ("sort", Special(S::Sort)),
        ("sort_desc", Special(S::SortDesc)),
    ]
};

fn function(name: &str) -> Option<Implementation> {
    FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, implementation)| *implementation)
}

fn unsupported_function(name: &str) -> String {
    format!("function `{name}` is not supported")
}

/// One query: the history and the times `@ start()` and `@ end()` stand for, which stay the
/// query's own inside subqueries.
struct Context<'a> {
    history: &'a History,
    query_start: i64,
    query_end: i64,
    options: EvalOptions,
}

impl Context<'_> {
    fn eval(&self, expr: &Expr, ts: i64) -> Result<Value, String> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::Paren(p) => self.eval(&p.expr, ts),
            Expr::Unary(u) => match self.eval(&u.expr, ts)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => Ok(Value::Vector(
                    v.into_iter().map(|(l, x)| (drop_name(l), -x)).collect(),
                )),
                Value::Matrix(_) => Err(format!("unary minus on a range vector in `{expr}`")),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(
                self.instant(vs, ts)
                    .into_iter()
                    .map(|(l, _, v)| (l, v))
                    .collect(),
            )),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                Ok(Value::Matrix(self.range_vector(expr, ts)?.0))
            }
            Expr::Call(call) => self.call(call, ts),
            Expr::Aggregate(agg) => self.aggregate(agg, ts),
            Expr::Binary(bin) => self.binary(bin, ts),
            Expr::StringLiteral(_) | Expr::Extension(_) => {
                Err(format!("`{expr}` is not supported by the evaluator"))
            }
        }
    }

    /// The time a selector or subquery reads at: `@` pins it, `offset` moves it back.
    fn selector_time(&self, at: &Option<AtModifier>, offset: &Option<Offset>, ts: i64) -> i64 {
        let base = match at {
            None => ts,
            Some(AtModifier::Start) => self.query_start,
            Some(AtModifier::End) => self.query_end,
            Some(AtModifier::At(time)) => system_time_ms(*time),
        };
        base - offset_ms(offset)
    }

    /// Samples with `start <= t <= end` of every series the selector matches, stale markers
    /// included.
    fn select(&self, vs: &VectorSelector, start: i64, end: i64) -> Vec<SeriesRange> {
        metric_names(self.history, vs)
            .iter()
            .flat_map(|name| {
                self.history
                    .select(name, |labels| selects(vs, labels), start, end)
            })
            .collect()
    }

    /// The newest sample `(labels, time, value)` of each matching series in the lookback
    /// window `(t - 5m, t]`, unless it is a staleness marker: that series has ended.
    fn instant(&self, vs: &VectorSelector, ts: i64) -> Vec<(LabelSet, i64, f64)> {
        let at = self.selector_time(&vs.at, &vs.offset, ts);
        self.select(vs, at - LOOKBACK_MS + 1, at)
            .into_iter()
            .filter_map(|range| {
                let (t, value) = *range.samples.last()?;
                (!is_stale_marker(value)).then(|| (pairs(&range.labels), t, value))
            })
            .collect()
    }

    /// A range selector's samples in `(end - range, end]` or a subquery's steps, with the window
    /// they cover; parentheses around either are allowed, as in Prometheus.
    fn range_vector(&self, expr: &Expr, ts: i64) -> Result<(RangeVector, Window), String> {
        match unwrap_parens(expr) {
            Expr::MatrixSelector(ms) => {
                let end = self.selector_time(&ms.vs.at, &ms.vs.offset, ts);
                let width = duration_ms(ms.range);
                let series = self
                    .select(&ms.vs, end - width + 1, end)
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

    /// Evaluates the inner expression at every multiple of the step in `(end - range, end]`:
    /// Prometheus aligns subquery steps to absolute time, not to the evaluation time.
    fn subquery(&self, sq: &SubqueryExpr, ts: i64) -> Result<(RangeVector, Window), String> {
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
        let start = end - width;
        let mut t = start.div_euclid(step) * step;
        if t <= start {
            t += step;
        }
        let mut series: BTreeMap<LabelSet, Samples> = BTreeMap::new();
        while t <= end {
            match self.eval(&sq.expr, t)? {
                Value::Vector(v) => {
                    for (labels, value) in v {
                        series.entry(labels).or_default().push((t, value));
                    }
                }
                _ => return Err(format!("subquery `{sq}`: expected an instant vector")),
            }
            t += step;
        }
        Ok((series.into_iter().collect(), Window { end, width }))
    }

    fn call(&self, call: &Call, ts: i64) -> Result<Value, String> {
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
                            values.sort_by(f64::total_cmp);
                            (drop_name(l), quantile(q, &values))
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
    fn scalar_arg(&self, arg: Option<&Expr>, ts: i64, function: &str) -> Result<f64, String> {
        match arg.map(|a| self.eval(a, ts)).transpose()? {
            Some(Value::Scalar(v)) => Ok(v),
            _ => Err(format!("{function}(): expected a scalar argument")),
        }
    }

    fn aggregate(&self, agg: &AggregateExpr, ts: i64) -> Result<Value, String> {
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
                other => return Err(format!("{other}(): expected a parameter")),
            };
            out.push((labels, value));
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
                let q = self.scalar_arg(Some(param), ts, op)?;
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

    fn binary(&self, bin: &BinaryExpr, ts: i64) -> Result<Value, String> {
        let op = bin.op.to_string();
        let modifier = bin.modifier.as_ref();
        if modifier.is_some_and(|m| m.fill_values != VectorMatchFillValues::default()) {
            return Err(format!("the fill modifiers are not supported (in `{bin}`)"));
        }
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
                "atan2" => a.atan2(b),
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
        let lhs = self.eval(&bin.lhs, ts)?;
        let rhs = self.eval(&bin.rhs, ts)?;
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
}

fn unwrap_parens(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(p) = expr {
        expr = &p.expr;
    }
    expr
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
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
fn sgn(x: f64) -> f64 {
    if x < 0.0 {
        -1.0
    } else if x > 0.0 {
        1.0
    } else {
        x
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

fn pairs(labels: &Labels) -> LabelSet {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn drop_name(mut labels: LabelSet) -> LabelSet {
    labels.retain(|(k, _)| k != "__name__");
    labels
}

fn string_arg<'e>(arg: Option<&'e Expr>, function: &str) -> Result<&'e str, String> {
    match arg.map(unwrap_parens) {
        Some(Expr::StringLiteral(s)) => Ok(&s.val),
        _ => Err(format!("{function}(): expected a string argument")),
    }
}

/// `label_replace` and `label_join` arguments that are fixed in the text, checked at load time.
fn check_label_arguments(call: &Call) -> Result<(), String> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| unwrap_parens(a)).collect();
    let destination = string_arg(args.get(1).copied(), name)?;
    if destination.is_empty() {
        return Err(format!("{name}(): the destination label name is empty"));
    }
    if name == "label_replace" {
        label_replace_regex(string_arg(args.get(4).copied(), name)?)?;
    }
    Ok(())
}

/// Prometheus anchors the regex and lets `.` match newlines.
fn label_replace_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?s:{pattern})$"))
        .map_err(|e| format!("label_replace(): invalid regex `{pattern}`: {e}"))
}

/// Sets `destination` to `replacement` (with `$1`, `${name}` expanded) on each series whose
/// `source` value matches, removing it when the result is empty; other series pass unchanged.
fn label_replace(
    input: Vec<(LabelSet, f64)>,
    destination: &str,
    replacement: &str,
    source: &str,
    pattern: &Regex,
) -> Vec<(LabelSet, f64)> {
    input
        .into_iter()
        .map(|(labels, value)| {
            let source_value = label_value(&labels, source);
            let Some(captures) = pattern.captures(source_value) else {
                return (labels, value);
            };
            let mut result = String::new();
            captures.expand(replacement, &mut result);
            (set_label(labels, destination, result), value)
        })
        .collect()
}

/// Sets `destination` to the `sources` values joined by `separator` (missing ones empty).
fn label_join(
    input: Vec<(LabelSet, f64)>,
    destination: &str,
    separator: &str,
    sources: &[&str],
) -> Vec<(LabelSet, f64)> {
    input
        .into_iter()
        .map(|(labels, value)| {
            let joined = sources
                .iter()
                .map(|source| label_value(&labels, source))
                .collect::<Vec<_>>()
                .join(separator);
            (set_label(labels, destination, joined), value)
        })
        .collect()
}

fn label_value<'l>(labels: &'l LabelSet, name: &str) -> &'l str {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Sets a label, keeping the set sorted; an empty value removes it, as in Prometheus.
fn set_label(mut labels: LabelSet, name: &str, value: String) -> LabelSet {
    labels.retain(|(k, _)| k != name);
    if !value.is_empty() {
        labels.push((name.to_string(), value));
        labels.sort();
    }
    labels
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

/// `histogram_quantile` over classic buckets: series grouped by their labels without `le` and
/// the name; a series without a parseable `le` is ignored, as in Prometheus.
fn histogram_quantile(q: f64, input: Vec<(LabelSet, f64)>) -> Vec<(LabelSet, f64)> {
    let mut groups: BTreeMap<LabelSet, Vec<(f64, f64)>> = BTreeMap::new();
    for (labels, count) in input {
        let Some(upper) = labels
            .iter()
            .find(|(k, _)| k == "le")
            .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        else {
            continue;
        };
        let key = labels
            .into_iter()
            .filter(|(k, _)| k != "le" && k != "__name__")
            .collect();
        groups.entry(key).or_default().push((upper, count));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| (labels, bucket_quantile(q, buckets)))
        .collect()
}

/// Prometheus' `BucketQuantile` over `(upper bound, cumulative count)` buckets: sorted,
/// duplicates merged, counts forced monotonic, linear interpolation inside the bucket the rank
/// falls in, and the highest finite bound when it falls in the +Inf bucket.
fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (upper, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == upper => last.1 += count,
            _ => merged.push((upper, count)),
        }
    }
    ensure_monotonic(&mut merged);
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let finite = &merged[..merged.len() - 1];
    let b = finite.partition_point(|bucket| bucket.1 < rank);
    if b == finite.len() {
        return finite[b - 1].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Prometheus' `ensureMonotonicAndIgnoreSmallDeltas`: a bucket whose count is lower than the
/// one before it (counters scraped at slightly different moments) or differs only by float
/// noise takes the previous count.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) {
    const TOLERANCE: f64 = 1e-12;
    let Some(&(_, mut previous)) = buckets.first() else {
        return;
    };
    for bucket in buckets.iter_mut().skip(1) {
        let current = bucket.1;
        if current == previous {
            continue;
        }
        if almost_equal(previous, current, TOLERANCE) || current < previous {
            bucket.1 = previous;
            continue;
        }
        previous = current;
    }
}

/// Prometheus' `almost.Equal`: relative comparison, absolute near zero.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if (a.is_nan() && b.is_nan()) || a == b {
        return true;
    }
    let sum = a.abs() + b.abs();
    let difference = (a - b).abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return difference < epsilon * f64::MIN_POSITIVE;
    }
    difference / sum.min(f64::MAX) < epsilon
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

/// `irate` and `idelta`: the change between the last two samples, per second for `irate`,
/// where a drop counts as a counter reset.
fn instant_change(samples: &[(i64, f64)], per_second: bool) -> Option<f64> {
    let [.., (t1, v1), (t2, v2)] = samples else {
        return None;
    };
    let interval = (t2 - t1) as f64 / 1000.0;
    if interval == 0.0 {
        return None;
    }
    if !per_second {
        return Some(v2 - v1);
    }
    let change = if v2 < v1 { *v2 } else { v2 - v1 };
    Some(change / interval)
}

/// Value changes, where NaN followed by NaN is no change.
fn changes(samples: &[(i64, f64)]) -> f64 {
    samples
        .windows(2)
        .filter(|w| w[0].1 != w[1].1 && !(w[0].1.is_nan() && w[1].1.is_nan()))
        .count() as f64
}

fn resets(samples: &[(i64, f64)]) -> f64 {
    samples.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64
}

fn mean(samples: &[(i64, f64)]) -> Option<f64> {
    (!samples.is_empty()).then(|| samples.iter().map(|x| x.1).sum::<f64>() / samples.len() as f64)
}

/// The minimum or maximum; a NaN is replaced by any real value, as in Prometheus.
fn extreme(samples: &[(i64, f64)], pick: fn(f64, f64) -> f64) -> Option<f64> {
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

/// Population variance, as `stdvar_over_time`.
fn variance(samples: &[(i64, f64)]) -> Option<f64> {
    let average = mean(samples)?;
    Some(samples.iter().map(|x| (x.1 - average).powi(2)).sum::<f64>() / samples.len() as f64)
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
    window: Window,
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
    let range_start = (window.end - window.width) as f64 / 1000.0;
    let range_end = window.end as f64 / 1000.0;
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
        factor /= window.width as f64 / 1000.0;
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
    match op {
        "and" | "unless" => {
            let right_signatures: BTreeSet<LabelSet> =
                right.iter().map(|(l, _)| signature(l, matching)).collect();
            let keep = op == "and";
            Ok(Value::Vector(
                left.into_iter()
                    .filter(|(l, _)| right_signatures.contains(&signature(l, matching)) == keep)
                    .collect(),
            ))
        }
        "or" => {
            let left_signatures: BTreeSet<LabelSet> =
                left.iter().map(|(l, _)| signature(l, matching)).collect();
            let mut out = left;
            out.extend(
                right
                    .into_iter()
                    .filter(|(l, _)| !left_signatures.contains(&signature(l, matching))),
            );
            Ok(Value::Vector(out))
        }
        _ => {
            let mut right_by: BTreeMap<LabelSet, f64> = BTreeMap::new();
            for (labels, value) in right {
                if right_by
                    .insert(signature(&labels, matching), value)
                    .is_some()
                {
                    return Err(format!(
                        "{op}: found duplicate series for the match group on the right hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
                    ));
                }
            }
            let mut matched = BTreeSet::new();
            let mut out = Vec::new();
            for (labels, value) in left {
                let signature = signature(&labels, matching);
                let Some(other) = right_by.get(&signature) else {
                    continue;
                };
                let Some(v) = result(value, *other, value) else {
                    continue;
                };
                // Only samples the operation keeps count, as in Prometheus.
                if !matched.insert(signature) {
                    return Err(format!(
                        "{op}: multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                    ));
                }
                // Prometheus' resultMetric: the left side's labels, without the name unless
                // filtering, then only the `on` labels or without the `ignoring` ones.
                let mut labels = if filter { labels } else { drop_name(labels) };
                match matching {
                    Some(LabelModifier::Include(on)) => {
                        labels.retain(|(k, _)| on.labels.contains(k))
                    }
                    Some(LabelModifier::Exclude(ignoring)) => {
                        labels.retain(|(k, _)| !ignoring.labels.contains(k))
                    }
                    None => {}
                }
                out.push((labels, v));
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
            // Classic histogram buckets growing 1, 3, 4 and 5 per step (cumulative).
            let mut batch = Batch::new();
            batch.family("request_duration_seconds", MetricKind::Histogram, "latency");
            for (le, per_step) in [("0.1", 1.0), ("0.5", 3.0), ("1", 4.0), ("+Inf", 5.0)] {
                batch.push(
                    "request_duration_seconds_bucket",
                    &[("job", "web"), ("le", le)],
                    step as f64 * per_step,
                );
            }
            history.ingest("h", ts, batch);
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

    const AT: i64 = 20 * 60_000 + 7_500;

    fn parse(expr: &str) -> Expr {
        promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn values(expr: &str, ts: i64) -> Vec<f64> {
        check(expr, ts).into_iter().map(|(_, v)| v).collect()
    }

    fn eval_error(expr: &str) -> String {
        match eval(&history(), &parse(expr), AT) {
            Ok(value) => panic!("{expr}: expected an error, got {value:?}"),
            Err(error) => error,
        }
    }

    fn refusal(expr: &str) -> String {
        match check_supported(&parse(expr)) {
            Ok(()) => panic!("{expr}: expected a refusal"),
            Err(error) => error,
        }
    }

    #[test]
    fn label_replace_and_label_join_rewrite_labels() {
        assert_eq!(
            check(
                r#"label_replace(up{instance="a"}, "host", "$1-x", "instance", "(.*)")"#,
                AT
            ),
            vec![(
                r#"[("__name__", "up"), ("host", "a-x"), ("instance", "a"), ("job", "api")]"#
                    .to_string(),
                1.0
            )]
        );
        // No match: unchanged. An empty result removes the label. Named groups expand.
        assert_eq!(
            check(
                r#"label_replace(up{instance="a"}, "host", "$1", "instance", "z(.*)")"#,
                AT
            )[0]
            .0,
            r#"[("__name__", "up"), ("instance", "a"), ("job", "api")]"#
        );
        assert_eq!(
            check(
                r#"label_replace(up{instance="a"}, "job", "", "instance", ".*")"#,
                AT
            )[0]
            .0,
            r#"[("__name__", "up"), ("instance", "a")]"#
        );
        assert_eq!(
            check(
                r#"label_replace(up{instance="a"}, "x", "${g}!", "job", "(?P<g>a)pi")"#,
                AT
            )[0]
            .0,
            r#"[("__name__", "up"), ("instance", "a"), ("job", "api"), ("x", "a!")]"#
        );
        assert_eq!(
            check(
                r#"label_join(up{instance="a"}, "id", "/", "job", "instance", "missing")"#,
                AT
            )[0]
            .0,
            r#"[("__name__", "up"), ("id", "api/a/"), ("instance", "a"), ("job", "api")]"#
        );
        assert!(
            eval_error(r#"label_replace(up, "instance", "x", "job", ".*")"#)
                .contains("same labelset")
        );
        assert!(refusal(r#"label_replace(up, "a", "$1", "job", "(")"#).contains("invalid regex"));
    }

    #[test]
    fn histogram_quantile_interpolates_classic_buckets() {
        let expr =
            |q: &str| format!("histogram_quantile({q}, rate(request_duration_seconds_bucket[5m]))");
        // Rates 1/15, 3/15, 4/15, 5/15 per second for le 0.1, 0.5, 1, +Inf.
        assert_eq!(
            check(&expr("0.5"), AT),
            vec![(r#"[("job", "web")]"#.to_string(), 0.4)]
        );
        assert_eq!(values(&expr("0.05"), AT), vec![0.025]);
        // In the +Inf bucket: the highest finite bound.
        assert_eq!(values(&expr("0.99"), AT), vec![1.0]);
        assert_eq!(values(&expr("1.5"), AT), vec![f64::INFINITY]);
        assert_eq!(values(&expr("-1"), AT), vec![f64::NEG_INFINITY]);
        // Grouping keeps other labels and drops `le` and the name.
        assert_eq!(
            check(
                "histogram_quantile(0.5, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
                AT
            ),
            vec![("[]".to_string(), 0.4)]
        );
    }

    #[test]
    fn bucket_quantile_matches_prometheus_edge_cases() {
        let inf = f64::INFINITY;
        // A decreasing bucket is raised to the one before it.
        assert_eq!(
            bucket_quantile(0.5, vec![(0.1, 5.0), (0.5, 3.0), (inf, 10.0)]),
            0.1
        );
        // Unsorted input and duplicate bounds are merged.
        assert_eq!(
            bucket_quantile(0.5, vec![(inf, 4.0), (1.0, 1.0), (1.0, 1.0), (2.0, 4.0)]),
            1.0
        );
        assert!(bucket_quantile(0.5, vec![(0.1, 1.0), (0.5, 2.0)]).is_nan());
        assert!(bucket_quantile(0.5, vec![(inf, 3.0)]).is_nan());
        assert!(bucket_quantile(0.5, vec![(1.0, 0.0), (inf, 0.0)]).is_nan());
        assert!(bucket_quantile(f64::NAN, vec![(1.0, 1.0), (inf, 1.0)]).is_nan());
        // The lowest bucket with a non-positive bound yields its bound.
        assert_eq!(
            bucket_quantile(0.25, vec![(-1.0, 2.0), (1.0, 4.0), (inf, 4.0)]),
            -1.0
        );
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
    fn regression_rate_with_offset_extrapolates_to_the_shifted_window() {
        assert_eq!(
            values(
                r#"increase(http_requests_total{instance="a"}[5m] offset 10m)"#,
                AT
            ),
            vec![300.0]
        );
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

    #[test]
    fn regression_one_to_one_matching_keeps_on_and_drops_ignoring_labels() {
        assert_eq!(
            check("up == on (instance) up", AT),
            vec![
                (r#"[("instance", "a")]"#.to_string(), 1.0),
                (r#"[("instance", "b")]"#.to_string(), 0.0)
            ]
        );
        assert_eq!(
            check("up > ignoring (job) up - 1", AT)[0].0,
            r#"[("__name__", "up"), ("instance", "a")]"#
        );
        assert_eq!(
            check("up + ignoring (job) up", AT)[0].0,
            r#"[("instance", "a")]"#
        );
        assert!(eval_error("up + on (job) up").contains("duplicate series"));
        assert!(eval_error("up + on (job) sum by (job) (up)").contains("multiple matches"));
        // Only kept samples count: b is filtered out, so a alone matches.
        assert_eq!(check("up > on (job) sum by (job) (up) - 1", AT).len(), 1);
    }

    #[test]
    fn check_supported_accepts_what_eval_handles() {
        for expr in [
            r#"max_over_time(rate(http_requests_total[5m])[30m:1m] @ 600 offset 1m)"#,
            r#"histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))"#,
            r#"label_replace(up, "host", "$1", "instance", "(.*)") > bool 0"#,
            r#"count_values("v", up) or on () vector(time())"#,
            r#"sort_desc(topk(3, {job="api"} offset 5m)) atan2 scalar(up)"#,
            r#"absent(up{a="1" or b="2"}) unless day_of_week() == 0"#,
        ] {
            assert_eq!(check_supported(&parse(expr)), Ok(()), "{expr}");
            assert!(eval(&history(), &parse(expr), AT).is_ok(), "{expr}");
        }
    }

    #[test]
    fn unsupported_constructs_are_named() {
        assert_eq!(
            refusal("double_exponential_smoothing(up[5m], 0.5, 0.5)"),
            "function `double_exponential_smoothing` is not supported"
        );
        assert_eq!(
            eval_error("double_exponential_smoothing(up[5m], 0.5, 0.5)"),
            "function `double_exponential_smoothing` is not supported"
        );
        for (expr, named) in [
            ("histogram_count(up)", "`histogram_count`"),
            ("histogram_fraction(0, 1, up)", "`histogram_fraction`"),
            (r#"sort_by_label(up, "job")"#, "`sort_by_label`"),
            ("mad_over_time(up[5m])", "`mad_over_time`"),
            ("sum(limitk(2, up))", "`limitk`"),
            ("limit_ratio(0.5, up)", "`limit_ratio`"),
            (r#""text""#, r#"`"text"`"#),
            ("up[1d:1s]", "more than"),
        ] {
            assert!(refusal(expr).contains(named), "{expr}: {}", refusal(expr));
        }
    }
}
