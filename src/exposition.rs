//! Renders the history's latest values in the Prometheus text exposition format (0.0.4).
//!
//! Rendering only reads what collectors already stored, so a scrape never waits for a
//! collection and costs the same whatever the collectors are doing.

use std::fmt::Write;

use crate::history::History;
use crate::model::{FamilyMeta, Labels, METRIC_NAME_LABEL};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends every live series of `history` to `out`, families sorted by name.
pub fn render(history: &History, out: &mut String) {
    history.for_each_latest(|meta, series| render_family(meta, series, out));
}

/// As [`render`], leaving out the families named in `skip` (rendered by someone else).
pub fn render_except(
    history: &History,
    skip: &std::collections::BTreeSet<String>,
    out: &mut String,
) {
    history.for_each_latest(|meta, series| {
        if !skip.contains(&meta.name) {
            render_family(meta, series, out);
        }
    });
}

fn render_family(meta: &FamilyMeta, series: &[(&Labels, f64)], out: &mut String) {
    out.push_str("# HELP ");
    out.push_str(&meta.name);
    out.push(' ');
    escape_help(&meta.help, out);
    out.push_str("\n# TYPE ");
    out.push_str(&meta.name);
    out.push(' ');
    out.push_str(meta.kind.as_str());
    out.push('\n');
    for (labels, value) in series {
        // A histogram's samples carry their own names (`_bucket`, `_sum`, `_count`).
        out.push_str(labels.metric_name());
        let mut first = true;
        for (key, label_value) in labels.iter().filter(|(k, _)| *k != METRIC_NAME_LABEL) {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(key);
            out.push_str("=\"");
            escape_label_value(label_value, out);
            out.push('"');
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        format_value(*value, out);
        out.push('\n');
    }
}

/// Writes a sample value the way Prometheus parses it: `+Inf`, `-Inf`, `NaN`, or a number.
pub fn format_value(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        // Integers print without a fraction or exponent, as the Go client does.
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

/// A sample value as text, formatted as on the exposition (`+Inf`, `NaN`, `1`, `0.5`).
pub fn format_value_string(value: f64) -> String {
    let mut out = String::new();
    format_value(value, &mut out);
    out
}

fn escape_help(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label_value(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryLimits;
    use crate::model::{Batch, MetricKind};

    #[test]
    fn renders_help_type_and_escaped_labels() {
        let mut batch = Batch::new();
        batch.family("b_total", MetricKind::Counter, "Line one\\two\nthree.");
        batch.push("b_total", &[("path", "C:\\x \"q\"\nz")], 1.5);
        batch.single("a", MetricKind::Gauge, "A gauge.", f64::INFINITY);
        batch.single("c", MetricKind::Gauge, "Big.", 12345678.0);
        let mut history = History::new(HistoryLimits::default());
        history.ingest("t", 1, batch);
        let mut out = String::new();
        render(&history, &mut out);
        assert_eq!(
            out,
            "# HELP a A gauge.\n# TYPE a gauge\na +Inf\n\
             # HELP b_total Line one\\\\two\\nthree.\n# TYPE b_total counter\n\
             b_total{path=\"C:\\\\x \\\"q\\\"\\nz\"} 1.5\n\
             # HELP c Big.\n# TYPE c gauge\nc 12345678\n"
        );
    }
}
