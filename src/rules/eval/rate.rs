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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

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
