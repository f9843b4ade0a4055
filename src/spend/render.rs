//! The terminal view of `prismwatch spend`: month-to-date per model and label, budget, forecast
//! and a day-by-day bar chart.

use std::fmt::Write;

use super::SpendReport;

/// Width of the longest bar in the daily chart.
const BAR_WIDTH: f64 = 40.0;

pub fn render_text(report: &SpendReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "AI spend for {} ({}), prices: shipped snapshot of {} plus config",
        report.month, report.time_zone, report.price_snapshot
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<12} {:<28} {:<24} {:>14} {:>14} {:>12}",
        "provider", "model", "labels", "input tok", "output tok", "cost $"
    );
    let mut lines = report.by_model.clone();
    lines.sort_by(|a, b| b.cost_dollars.total_cmp(&a.cost_dollars));
    for line in &lines {
        let labels: Vec<String> = line
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let cost = if line.unpriced_tokens > 0.0 && line.cost_dollars == 0.0 {
            "unpriced".to_string()
        } else {
            format!("{:.4}", line.cost_dollars)
        };
        let _ = writeln!(
            out,
            "{:<12} {:<28} {:<24} {:>14.0} {:>14.0} {:>12}",
            line.provider,
            line.model,
            labels.join(","),
            line.input_tokens,
            line.output_tokens,
            cost
        );
    }
    let _ = writeln!(out);
    let _ = write!(
        out,
        "month to date: ${:.2}, {:.0} tokens",
        report.cost_dollars, report.tokens
    );
    if report.unpriced_tokens > 0.0 {
        let _ = write!(
            out,
            " ({:.0} tokens of unpriced models not in the cost)",
            report.unpriced_tokens
        );
    }
    let _ = writeln!(out);
    if let Some(budget) = report.budget_dollars {
        let _ = writeln!(
            out,
            "budget: ${budget:.2} ({:.1}% used)",
            report.cost_dollars / budget * 100.0
        );
    }
    if let Some(budget) = report.budget_tokens.filter(|b| *b > 0.0) {
        let _ = writeln!(
            out,
            "token budget: {budget:.0} ({:.1}% used)",
            report.tokens / budget * 100.0
        );
    }
    for line in &report.label_budgets {
        let used = if line.budget_dollars > 0.0 {
            format!(
                " ({:.1}% used)",
                line.spent_dollars / line.budget_dollars * 100.0
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "budget {}={}: ${:.2} of ${:.2}{used}",
            line.label, line.value, line.spent_dollars, line.budget_dollars
        );
    }
    let _ = write!(
        out,
        "burn rate: ${:.2}/day; month-end forecast: ${:.2}",
        report.daily_rate_dollars, report.forecast_dollars
    );
    match report.forecast_interval {
        Some((low, high)) => {
            let _ = write!(out, " (95% interval ${low:.2} to ${high:.2})");
        }
        None => {
            let _ = write!(
                out,
                " (rough: {} completed day(s) this month, an interval needs 2)",
                report.inputs.completed_days.len()
            );
        }
    }
    let _ = writeln!(out);
    if let Some(when) = report.exhaustion_timestamp {
        let date = jiff::Timestamp::from_second(when as i64)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "budget runs out around {date} at this rate");
    }
    let _ = writeln!(out);
    let max = report
        .days
        .iter()
        .map(|(_, cost)| *cost)
        .fold(0.0, f64::max);
    for (day, cost) in &report.days {
        let length = if max > 0.0 {
            (cost / max * BAR_WIDTH).round() as usize
        } else {
            0
        };
        let _ = writeln!(out, "{day:>3} {:<40} ${cost:.2}", "█".repeat(length));
    }
    out
}
