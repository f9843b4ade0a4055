//! How fast a series changes: `rate`, `increase` and `delta` extrapolated to the window's
//! edges as Prometheus does, `irate` and `idelta` from the last two samples, and the
//! least-squares fit behind `deriv` and `predict_linear`.

use super::Window;

/// `irate` and `idelta`: the change between the last two samples, per second for `irate`,
/// where a drop counts as a counter reset.
pub(super) fn instant_change(samples: &[(i64, f64)], per_second: bool) -> Option<f64> {
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

/// Least-squares slope (per second) and the intercept at `intercept_ms`, as Prometheus'
/// `linearRegression`; a constant series has slope 0.
pub(super) fn linear_regression(samples: &[(i64, f64)], intercept_ms: i64) -> Option<(f64, f64)> {
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
pub(super) fn extrapolated(
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
    let threshold = average * 1.1;
    let mut to_start = limit_extrapolation(first_s - range_start, average, threshold);
    let to_end = limit_extrapolation(range_end - last_s, average, threshold);
    // The zero cutoff applies after the half-interval limit, as in Prometheus 3: a counter
    // is never extrapolated back to below zero.
    if counter && result > 0.0 && *first_v >= 0.0 {
        to_start = to_start.min(sampled * (first_v / result));
    }
    let interval = sampled + to_start + to_end;
    let mut factor = interval / sampled;
    if per_second {
        factor /= window.width as f64 / 1000.0;
    }
    Some(result * factor)
}

/// The distance to extrapolate towards one edge of the window: all the way when the edge is
/// within 110% of the average sample spacing, otherwise half a spacing, because a missing
/// sample where one was expected means the series starts or ends inside the window.
fn limit_extrapolation(to_edge: f64, average: f64, threshold: f64) -> f64 {
    if to_edge >= threshold {
        average / 2.0
    } else {
        to_edge
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::model::MetricKind;

    /// A counter sampled every 15 s from 0 s with the values 1 to 5.
    fn counter_one_to_five() -> crate::history::History {
        let samples: Vec<(i64, f64)> = (0..5).map(|i| (i * 15_000, (i + 1) as f64)).collect();
        series_history("c_total", MetricKind::Counter, &samples)
    }

    #[test]
    fn increase_limits_extrapolation_to_start_before_the_zero_cutoff() {
        // Window (-40 s, 20 s] holds the samples at 0 s and 15 s. The start is 40 s away, past
        // 1.1 spacings, so extrapolation is half a spacing (7.5 s); the zero point (15 s back)
        // is further and does not apply; the end is 5 s away: (15 + 7.5 + 5) / 15.
        let increase = exact_values(&counter_one_to_five(), "increase(c_total[1m])", 20_000);
        assert_eq!(increase, vec![27.5 / 15.0]);
        let rate = exact_values(&counter_one_to_five(), "rate(c_total[1m])", 20_000);
        assert_eq!(rate, vec![27.5 / 15.0 / 60.0]);
    }

    #[test]
    fn increase_stops_extrapolating_a_counter_at_zero() {
        // Window (0 s, 60 s] holds 2..5 at 15..60 s: the start is 15 s away (within the
        // threshold) and the zero point 30 s back (45 * 2 / 3), so 15 s stands. With 0.5 as
        // the first value the zero point is only 5 s back, and it wins.
        let history = counter_one_to_five();
        assert_eq!(
            exact_values(&history, "increase(c_total[1m])", 60_000),
            vec![3.0 * 60.0 / 45.0]
        );
        let samples = [(15_000, 0.5), (30_000, 2.0), (45_000, 3.5), (60_000, 5.0)];
        let history = series_history("c_total", MetricKind::Counter, &samples);
        let to_zero = 45.0 * (0.5 / 4.5);
        assert_eq!(
            exact_values(&history, "increase(c_total[1m])", 60_000),
            vec![4.5 * (45.0 + to_zero) / 45.0]
        );
    }

    #[test]
    fn delta_of_a_gauge_has_no_zero_cutoff() {
        let samples = [(15_000, 0.5), (30_000, 2.0), (45_000, 3.5), (60_000, 5.0)];
        let history = series_history("g", MetricKind::Gauge, &samples);
        assert_eq!(
            exact_values(&history, "delta(g[1m])", 60_000),
            vec![4.5 * 60.0 / 45.0]
        );
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
    fn regression_rate_with_offset_extrapolates_to_the_shifted_window() {
        assert_eq!(
            values(
                r#"increase(http_requests_total{instance="a"}[5m] offset 10m)"#,
                AT
            ),
            vec![300.0]
        );
    }
}
