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

mod aggregate;
mod binary;
mod functions;
mod histogram;
mod labels;
mod rate;
mod selectors;
mod subquery;
mod summation;
#[cfg(test)]
mod test_support;

use std::time::Duration;

use promql_parser::parser::{Expr, VectorMatchFillValues};

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use promql_parser::parser::{AtModifier, VectorSelector};

use crate::history::{History, SeriesRange};

use functions::{changes, extreme, mean, resets, sgn, variance};
use labels::check_label_arguments;
use rate::{extrapolated, instant_change, linear_regression};

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
    /// The most samples one evaluation may load (Prometheus' `--query.max-samples`).
    pub max_samples: u64,
}

/// The default of [`EvalOptions::max_samples`], Prometheus' default.
pub const MAX_SAMPLES: u64 = 50_000_000;

/// The earliest and latest times (ms) a query or an `@` modifier may name: Prometheus' API
/// bounds (`minTime` and `maxTime` in `web/api/v1/api.go`, about 292 million years either side
/// of 1970). Beyond them time arithmetic overflows, so a step loop would never end.
pub const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
pub const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// Why an evaluation was stopped from outside, as Prometheus names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interruption {
    /// The client went away (Prometheus' `canceled`).
    Canceled,
    /// The query ran past its timeout (Prometheus' `timeout`).
    TimedOut,
}

impl Interruption {
    /// Prometheus' message for the interruption in `stage` (`expression evaluation`,
    /// `query queue`).
    pub fn message(self, stage: &str) -> String {
        match self {
            Interruption::Canceled => format!("query was canceled in {stage}"),
            Interruption::TimedOut => format!("query timed out in {stage}"),
        }
    }
}

/// A flag shared between a running evaluation and whoever may stop it (the HTTP handler on a
/// timeout or when its client disconnects). The evaluator checks it at every selection and
/// every subquery step, alongside the sample budget, so a stopped query ends within one step.
#[derive(Clone, Debug, Default)]
pub struct Interrupt(Arc<AtomicU8>);

impl Interrupt {
    /// Stops the evaluation; the first reason given is kept.
    pub fn interrupt(&self, reason: Interruption) {
        let code = match reason {
            Interruption::Canceled => 1,
            Interruption::TimedOut => 2,
        };
        let _ = self
            .0
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Why the evaluation was stopped, if it was.
    pub fn reason(&self) -> Option<Interruption> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(Interruption::Canceled),
            2 => Some(Interruption::TimedOut),
            _ => None,
        }
    }

    /// An error with Prometheus' message when the evaluation was stopped.
    pub fn check(&self) -> Result<(), String> {
        match self.reason() {
            Some(reason) => Err(reason.message("expression evaluation")),
            None => Ok(()),
        }
    }
}

/// Refuses a time outside [`MIN_TIME_MS`]..=[`MAX_TIME_MS`].
pub fn check_time_ms(ms: i64) -> Result<i64, String> {
    if (MIN_TIME_MS..=MAX_TIME_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!(
            "the time is outside {} to {} (Prometheus' range)",
            MIN_TIME_MS / 1000,
            MAX_TIME_MS / 1000
        ))
    }
}

impl Default for EvalOptions {
    fn default() -> EvalOptions {
        EvalOptions {
            default_subquery_step_ms: DEFAULT_SUBQUERY_STEP_MS,
            query_range: None,
            max_samples: MAX_SAMPLES,
        }
    }
}

/// Where the evaluator reads series: the history itself, or a lock around it. Through a lock,
/// the lock is held per selection, never across a whole evaluation, so a slow rule (a long
/// subquery) never holds up collectors, scrapes or other rule groups.
pub trait SeriesSource {
    /// Samples with `start <= t <= end`, stale markers included, of every series `vs` matches.
    fn select_matching(&self, vs: &VectorSelector, start: i64, end: i64) -> Vec<SeriesRange>;
}

impl SeriesSource for RwLock<History> {
    fn select_matching(&self, vs: &VectorSelector, start: i64, end: i64) -> Vec<SeriesRange> {
        self.read()
            .unwrap_or_else(|e| e.into_inner())
            .select_matching(vs, start, end)
    }
}

impl SeriesSource for RefCell<History> {
    fn select_matching(&self, vs: &VectorSelector, start: i64, end: i64) -> Vec<SeriesRange> {
        self.borrow().select_matching(vs, start, end)
    }
}

/// Evaluates `expr` at `ts` (milliseconds) over `history` with the default options.
pub fn eval(history: &dyn SeriesSource, expr: &Expr, ts: i64) -> Result<Value, String> {
    eval_with(history, expr, ts, &EvalOptions::default())
}

/// Evaluates `expr` as an instant query at `ts` (milliseconds) over `history`.
pub fn eval_with(
    history: &dyn SeriesSource,
    expr: &Expr,
    ts: i64,
    options: &EvalOptions,
) -> Result<Value, String> {
    eval_interruptible(history, expr, ts, options, &Interrupt::default())
}

/// Like [`eval_with`], stopping with Prometheus' `canceled` or `timeout` message as soon as
/// `interrupt` is set.
pub fn eval_interruptible(
    history: &dyn SeriesSource,
    expr: &Expr,
    ts: i64,
    options: &EvalOptions,
    interrupt: &Interrupt,
) -> Result<Value, String> {
    let (query_start, query_end) = options.query_range.unwrap_or((ts, ts));
    let context = Context {
        history,
        query_start,
        query_end,
        options: *options,
        loaded: Cell::new(0),
        interrupt,
    };
    let value = context.eval(expr, ts);
    interrupt.check()?;
    let value = value?;
    if context.loaded.get() > options.max_samples {
        return Err(format!(
            "the expression would load more than {} samples; narrow its selectors, ranges or subquery steps",
            options.max_samples
        ));
    }
    Ok(value)
}

/// The most steps any chain of nested subqueries in `expr` takes, multiplied along the chain;
/// a subquery without a step is counted at 10 s, finer than any group interval in practice.
fn subquery_steps(expr: &Expr) -> u128 {
    let steps = |range: std::time::Duration, step: Option<std::time::Duration>| {
        let step = step.map(duration_ms).filter(|ms| *ms > 0).unwrap_or(10_000);
        (duration_ms(range) / step).max(1) as u128
    };
    match expr {
        Expr::Subquery(sq) => steps(sq.range, sq.step).saturating_mul(subquery_steps(&sq.expr)),
        Expr::Paren(p) => subquery_steps(&p.expr),
        Expr::Unary(u) => subquery_steps(&u.expr),
        Expr::Aggregate(a) => {
            subquery_steps(&a.expr).max(a.param.as_deref().map_or(1, subquery_steps))
        }
        Expr::Binary(b) => subquery_steps(&b.lhs).max(subquery_steps(&b.rhs)),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .map(|a| subquery_steps(a))
            .max()
            .unwrap_or(1),
        _ => 1,
    }
}

/// Refuses, naming the construct, anything in `expr` that [`eval`] cannot evaluate, so rule
/// loading fails instead of a rule silently producing wrong results. Static arguments that can
/// only fail at evaluation (a `label_replace` regex, a label name) are checked here too.
pub fn check_supported(expr: &Expr) -> Result<(), String> {
    match expr {
        Expr::NumberLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => check_at(&vs.at),
        Expr::MatrixSelector(ms) => check_at(&ms.vs.at),
        Expr::StringLiteral(_) => Err(format!(
            "string literal `{expr}` is only supported as a function argument"
        )),
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::Subquery(sq) => {
            check_at(&sq.at)?;
            if let Some(step) = sq.step
                && duration_ms(step) > 0
                && duration_ms(sq.range) / duration_ms(step) > MAX_SUBQUERY_STEPS
            {
                return Err(format!(
                    "subquery `{expr}` has more than {MAX_SUBQUERY_STEPS} steps"
                ));
            }
            // Nested subqueries multiply: each outer step evaluates the inner one whole.
            let nested = subquery_steps(expr);
            if nested > MAX_SUBQUERY_STEPS as u128 {
                return Err(format!(
                    "nested subqueries in `{expr}` evaluate their innermost expression {nested} times; at most {MAX_SUBQUERY_STEPS} are allowed"
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

/// Refuses an `@` time outside Prometheus' range ([`MIN_TIME_MS`]..=[`MAX_TIME_MS`]), with
/// Prometheus' message: evaluating at such a time would overflow the time arithmetic.
fn check_at(at: &Option<AtModifier>) -> Result<(), String> {
    let Some(AtModifier::At(time)) = at else {
        return Ok(());
    };
    let ms: i128 = match time.duration_since(std::time::SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_millis() as i128,
        Err(before) => -(before.duration().as_millis() as i128),
    };
    if (MIN_TIME_MS as i128..=MAX_TIME_MS as i128).contains(&ms) {
        Ok(())
    } else {
        Err(format!(
            "timestamp out of bounds for @ modifier: {:.6}; Prometheus' range is {} to {}",
            ms as f64 / 1000.0,
            MIN_TIME_MS / 1000,
            MAX_TIME_MS / 1000
        ))
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
            OverTime(|s, _| Some(summation::sum(s.iter().map(|x| x.1)))),
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
    history: &'a dyn SeriesSource,
    query_start: i64,
    query_end: i64,
    options: EvalOptions,
    /// Samples loaded so far; past `options.max_samples` selections return nothing and the
    /// evaluation fails, so a runaway expression ends quickly instead of occupying a thread.
    loaded: Cell<u64>,
    /// Set from outside to stop the evaluation (timeout, client gone).
    interrupt: &'a Interrupt,
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

fn drop_name(mut labels: LabelSet) -> LabelSet {
    labels.retain(|(k, _)| k != "__name__");
    labels
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

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
    fn runaway_expressions_are_bounded() {
        // Nested subqueries multiply: 60 x 60 x 60 steps is refused at load.
        let nested = parse("max_over_time(max_over_time(max_over_time(up[1h:1m])[1h:1m])[1h:1m])");
        assert!(check_supported(&nested).is_err_and(|e| e.contains("216000 times")));
        let fine = parse("max_over_time(rate(http_requests_total[5m])[1h:1m])");
        assert_eq!(check_supported(&fine), Ok(()));
        // A sample budget stops an evaluation that loads too much, whatever its shape.
        let options = EvalOptions {
            max_samples: 100,
            ..EvalOptions::default()
        };
        let heavy = parse("max_over_time(sum(rate(http_requests_total[5m]))[30m:1m])");
        assert!(
            eval_with(&history(), &heavy, AT, &options)
                .is_err_and(|e| e.contains("more than 100 samples"))
        );
        assert!(eval_with(&history(), &heavy, AT, &EvalOptions::default()).is_ok());
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

    #[test]
    fn experimental_and_native_histogram_functions_are_refused_as_by_a_default_prometheus() {
        // Prometheus 3 accepts these only with --enable-feature=promql-experimental-functions.
        for name in ["first_over_time", "mad_over_time", "ts_of_max_over_time"] {
            let expr = format!("{name}(up[5m])");
            assert_eq!(
                refusal(&expr),
                format!("function `{name}` is not supported"),
                "{expr}"
            );
            assert_eq!(
                eval_error(&expr),
                format!("function `{name}` is not supported")
            );
        }
        // Native-histogram functions: over classic `_bucket` series a default Prometheus 3.0
        // answers nothing, so a rule using them could never fire; refusing it says so at load.
        for expr in [
            "histogram_fraction(0, 0.5, request_duration_seconds_bucket)",
            "histogram_count(request_duration_seconds_bucket)",
        ] {
            assert!(refusal(expr).contains("is not supported"), "{expr}");
        }
    }

    #[test]
    fn times_at_the_edges_of_prometheus_range_end() {
        // Refused at load: an `@` beyond the range overflows the time arithmetic.
        for expr in [
            "up @ 9223372036854775",
            "rate(up[5m] @ -9223372036854775)",
            "max_over_time(vector(1)[5m:1m] @ 1e300)",
        ] {
            assert!(
                refusal(expr).starts_with("timestamp out of bounds for @ modifier"),
                "{expr}: {}",
                refusal(expr)
            );
        }
        assert_eq!(check_supported(&parse("up @ 1700000000")), Ok(()));
        // At the very edges, subqueries and negative offsets finish instead of wrapping around.
        for (expr, ts) in [
            ("max_over_time(vector(1)[5m:1m])", MAX_TIME_MS),
            ("max_over_time(vector(1)[5m:1m] offset -1h)", MAX_TIME_MS),
            ("max_over_time(vector(1)[5m:1m])", MIN_TIME_MS),
            ("rate(up[5m] offset -1h)", MAX_TIME_MS),
        ] {
            assert!(eval(&history(), &parse(expr), ts).is_ok(), "{expr} at {ts}");
        }
        assert_eq!(check_time_ms(MAX_TIME_MS), Ok(MAX_TIME_MS));
        assert!(check_time_ms(MAX_TIME_MS + 1).is_err());
        assert!(check_time_ms(i64::MIN).is_err());
    }

    #[test]
    fn an_interrupted_evaluation_stops_with_prometheus_message() {
        let expr = parse("max_over_time(vector(1)[1h:1s])");
        for (reason, message) in [
            (
                Interruption::Canceled,
                "query was canceled in expression evaluation",
            ),
            (
                Interruption::TimedOut,
                "query timed out in expression evaluation",
            ),
        ] {
            let interrupt = Interrupt::default();
            interrupt.interrupt(reason);
            // A later reason does not replace the first.
            interrupt.interrupt(Interruption::Canceled);
            let got =
                eval_interruptible(&history(), &expr, AT, &EvalOptions::default(), &interrupt);
            assert_eq!(got, Err(message.to_string()));
        }
        let untouched = Interrupt::default();
        assert!(
            eval_interruptible(&history(), &expr, AT, &EvalOptions::default(), &untouched).is_ok()
        );
    }
}
