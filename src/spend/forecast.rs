//! Month-end forecast of spend from the days completed so far: a mean daily burn rate with a
//! Student-t prediction interval for the remaining days. Pure statistics, checked against SciPy.
//!
//! Model: daily spend is independent with unknown mean μ and variance σ², estimated from the `k`
//! completed days. The remaining `R` days (today's rest included) sum to `R·μ̂` with variance
//! `R·σ² + R²·σ²/k` (the days' own spread plus the uncertainty of μ̂), so the interval is
//! `spent + R·μ̂ ± t(1-α/2, k-1)·s·sqrt(R + R²/k)`. Fewer than two completed days give an
//! estimate without an interval.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// The forecast of one month.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    /// Mean spend per day over the completed days (or the partial day when there are none).
    pub daily_rate: f64,
    /// Spend expected by the end of the month.
    pub month_end: f64,
    /// Bounds of the prediction interval, when at least two days are complete.
    pub interval: Option<(f64, f64)>,
    /// Days from now until the budget is used up at the daily rate (None without a budget or
    /// with a zero rate); may exceed the days left in the month.
    pub days_to_exhaustion: Option<f64>,
}

/// `completed`: spend of each completed day of the month; `spent`: month-to-date spend including
/// today; `remaining_days`: days left in the month, fraction of today included; `confidence`:
/// e.g. 0.95.
pub fn forecast(
    completed: &[f64],
    spent: f64,
    today_elapsed: f64,
    remaining_days: f64,
    budget: Option<f64>,
    confidence: f64,
) -> Forecast {
    let k = completed.len();
    let daily_rate = if k > 0 {
        completed.iter().sum::<f64>() / k as f64
    } else if today_elapsed > 0.0 {
        // Only today so far: extrapolate its partial spend.
        spent / today_elapsed
    } else {
        0.0
    };
    let remaining = remaining_days.max(0.0);
    let month_end = spent + daily_rate * remaining;
    let interval = (k >= 2).then(|| {
        let mean = daily_rate;
        let variance = completed.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (k as f64 - 1.0);
        let spread = (variance * (remaining + remaining * remaining / k as f64)).sqrt();
        let t = StudentsT::new(0.0, 1.0, k as f64 - 1.0)
            .map(|dist| dist.inverse_cdf(1.0 - (1.0 - confidence) / 2.0))
            .unwrap_or(f64::NAN);
        ((month_end - t * spread).max(spent), month_end + t * spread)
    });
    let days_to_exhaustion = match budget {
        Some(budget) if daily_rate > 0.0 => Some(((budget - spent) / daily_rate).max(0.0)),
        _ => None,
    };
    Forecast {
        daily_rate,
        month_end,
        interval,
        days_to_exhaustion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_burn_projects_linearly_with_a_narrow_interval() {
        let days = [10.0, 10.0, 10.0, 10.0];
        let result = forecast(&days, 45.0, 0.5, 25.5, Some(200.0), 0.95);
        assert!((result.month_end - (45.0 + 255.0)).abs() < 1e-9);
        assert_eq!(result.interval, Some((300.0, 300.0)));
        assert_eq!(result.days_to_exhaustion, Some(15.5));
    }

    #[test]
    fn matches_a_hand_computed_t_interval() {
        // k = 3, mean 20, s = 10, R = 10: t(0.975, 2) = 4.302652729749464.
        let result = forecast(&[10.0, 20.0, 30.0], 60.0, 0.0, 10.0, None, 0.95);
        let spread = 10.0 * (10.0f64 + 100.0 / 3.0).sqrt();
        let (low, high) = result.interval.unwrap_or((0.0, 0.0));
        assert!(
            (high - (260.0 + 4.302_652_729_749_464 * spread)).abs() < 1e-6,
            "{high}"
        );
        assert!(
            (low - (260.0 - 4.302_652_729_749_464 * spread).max(60.0)).abs() < 1e-6,
            "{low}"
        );
    }
}
