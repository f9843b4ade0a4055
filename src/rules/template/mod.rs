//! Alert label and annotation templates: Go `text/template` as Prometheus runs it, with the
//! Prometheus function set. `check` parses at load time so a typo fails `rules check`, not the
//! first alert at 3 a.m.; `render` expands a template byte-identically to Prometheus, because
//! `promtool test rules` and `prismwatch rules test` must agree on the same `exp_annotations`.
//!
//! The evaluation model copies Go's: values are typed (`string`, `float64`, `int`, `bool`,
//! `map[string]string` and the data struct), printing uses Go's `fmt` rules (`1e+06`, `+Inf`),
//! comparisons are `lt`/`eq` with `gt = !le` (so `gt NaN 1.0` is true, as in Go), and missing
//! label keys render as the empty string (Prometheus sets `missingkey=zero`).

mod exec;
mod functions;
mod lex;
mod parse;
mod printf;
#[cfg(test)]
mod tests;

use exec::execute;
use parse::parse;

/// What a template sees: Prometheus' `AlertTemplateData` plus the external URL.
#[derive(Clone, Copy, Debug)]
pub struct TemplateData<'a> {
    /// The labels of the sample that fired, as Prometheus passes them: the expression's output
    /// labels (with `__name__` when the expression kept it), without the rule's own labels.
    pub labels: &'a [(String, String)],
    /// The configured external labels (`$externalLabels`).
    pub external_labels: &'a [(String, String)],
    /// The sample value (`$value`).
    pub value: f64,
    /// The configured external URL (`$externalURL`); promtool 2.42 passes the empty string.
    pub external_url: &'a str,
}

/// Functions prismwatch renders: the Go builtins and Prometheus functions that need no query
/// engine.
pub const SUPPORTED_FUNCTIONS: [&str; 30] = [
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "index",
    "len",
    "print",
    "printf",
    "println",
    "humanize",
    "humanize1024",
    "humanizePercentage",
    "humanizeDuration",
    "humanizeTimestamp",
    "toUpper",
    "toLower",
    "title",
    "reReplaceAll",
    "match",
    "stripPort",
    "safeHtml",
    "externalURL",
    "html",
    "urlquery",
    "js",
];

/// Functions Go or Prometheus define that prismwatch refuses at load time, with the reason.
const REFUSED_FUNCTIONS: [(&str, &str); 12] = [
    ("query", QUERY_REASON),
    ("first", QUERY_REASON),
    ("label", QUERY_REASON),
    ("value", QUERY_REASON),
    ("strvalue", QUERY_REASON),
    ("sortByLabel", QUERY_REASON),
    (
        "args",
        "it only feeds `template` calls, which alert templates cannot define",
    ),
    (
        "graphLink",
        "links to the Prometheus UI have no prismwatch equivalent",
    ),
    (
        "tableLink",
        "links to the Prometheus UI have no prismwatch equivalent",
    ),
    ("pathPrefix", "prismwatch has no web path prefix"),
    (
        "parseDuration",
        "it is not used by alert rules; open an issue if you need it",
    ),
    ("call", "alert template data has no function values"),
];

const QUERY_REASON: &str = "it runs a PromQL query while rendering, and templates have no query \
                            engine in prismwatch; compute the value in the rule expression instead";

/// Prometheus prepends these definitions to every alert template; error columns on the first
/// line count them, so we add their length to match Go's messages.
const PROMETHEUS_PREFIX_LEN: usize = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}\
     {{$externalURL := .ExternalURL}}{{$value := .Value}}"
    .len();

/// The Go type name of Prometheus' template data struct, as it appears in Go's errors.
const DATA_TYPE: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; \
                         ExternalURL string; Value float64 }";

/// Checks that a template parses and uses only functions prismwatch renders.
pub fn check(template: &str) -> Result<(), String> {
    parse(template).map(|_| ())
}

/// Renders a template against one alert's data. The error names the failing action as Go does
/// (`line:column: executing at <gt $value 1>: error calling gt: ...`).
pub fn render(template: &str, data: &TemplateData<'_>) -> Result<String, String> {
    let nodes = parse(template)?;
    execute(&nodes, data).map_err(|error| {
        let (line, column) = error.location(template);
        format!(
            "{line}:{column}: executing at <{}>: {}",
            error.context, error.message
        )
    })
}

/// Renders a template for an alert exactly as Prometheus fills the label or annotation: a
/// failure becomes the text `<error expanding template: ...>` with Go's wording, which is what
/// `promtool test rules` compares against `exp_annotations`.
pub fn expand_for_alert(rule_name: &str, template: &str, data: &TemplateData<'_>) -> String {
    let name = format!("__alert_{rule_name}");
    let nodes = match parse(template) {
        Ok(nodes) => nodes,
        Err(message) => {
            return format!(
                "<error expanding template: error parsing template {name}: template: {name}: \
                 {message}>"
            );
        }
    };
    match execute(&nodes, data) {
        Ok(text) => text,
        Err(error) => {
            let (line, column) = error.location(template);
            format!(
                "<error expanding template: error executing template {name}: template: \
                 {name}:{line}:{column}: executing \"{name}\" at <{}>: {}>",
                error.context, error.message
            )
        }
    }
}
