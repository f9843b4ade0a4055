//! Sums, means and variances computed the way Prometheus 3 computes them, so that results
//! agree to the last bit: compensated (Kahan-Babuska/Neumaier) summation, a mean that switches
//! to incremental form before the running sum overflows, and Welford's variance, which is
//! exactly 0 for identical inputs where the two-pass formula leaves rounding noise.

/// One step of Neumaier's compensated summation (Prometheus' `kahansum.Inc`): the new sum and
/// the new compensation. The compensation is reset at an infinite sum, where it is meaningless.
pub(super) fn compensated_add(increment: f64, sum: f64, compensation: f64) -> (f64, f64) {
    let total = sum + increment;
    let compensation = if total.is_infinite() {
        0.0
    } else if sum.abs() >= increment.abs() {
        compensation + ((sum - total) + increment)
    } else {
        compensation + ((increment - total) + sum)
    };
    (total, compensation)
}

/// The compensated sum of `values`, as `sum` and `sum_over_time`: 2, 8, 1e100, -1e100 is 10.
pub(super) fn sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let (total, compensation) = values
        .into_iter()
        .fold((0.0, 0.0), |(s, c), v| compensated_add(v, s, c));
    if total.is_infinite() {
        total
    } else {
        total + compensation
    }
}

/// The mean as `avg_over_time`: a compensated sum divided by the count while the sum stays
/// finite, and from the first value that would overflow it, an incremental mean instead
/// (the direct form is more accurate, the incremental one cannot overflow). `None` for no
/// values.
pub(super) fn mean_over_time(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values = values.into_iter();
    let mut sum = values.next()?;
    let (mut count, mut mean, mut compensation) = (1.0, 0.0, 0.0);
    let mut incremental = false;
    for value in values {
        count += 1.0;
        if !incremental {
            let (new_sum, new_compensation) = compensated_add(value, sum, compensation);
            if !new_sum.is_infinite() {
                (sum, compensation) = (new_sum, new_compensation);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            compensation /= count - 1.0;
        }
        let keep = (count - 1.0) / count;
        (mean, compensation) = compensated_add(value / count, keep * mean, keep * compensation);
    }
    Some(if incremental {
        mean + compensation
    } else {
        sum / count + compensation / count
    })
}

/// The mean as the `avg` aggregation: the same switch from direct to incremental form as
/// [`mean_over_time`], but with the aggregation's incremental step, which keeps an infinite
/// mean when a finite value or an infinity of the same sign arrives (instead of making NaN of
/// `inf - inf`). `None` for no values.
pub(super) fn mean_of_group(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values = values.into_iter();
    let first = values.next()?;
    let (mut sum, mut mean, mut compensation, mut count) = (first, first, 0.0, 1.0);
    let mut incremental = false;
    for value in values {
        count += 1.0;
        if !incremental {
            let (new_sum, new_compensation) = compensated_add(value, sum, compensation);
            if !new_sum.is_infinite() {
                (sum, compensation) = (new_sum, new_compensation);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            compensation /= count - 1.0;
        }
        if mean.is_infinite() && (value.is_finite() || value == mean) {
            continue;
        }
        let current = mean + compensation;
        (mean, compensation) = compensated_add(value / count - current / count, mean, compensation);
    }
    Some(if incremental {
        mean + compensation
    } else {
        (sum + compensation) / count
    })
}

/// Population variance as `stdvar_over_time`: Welford's update with both the mean and the
/// sum of squares compensated, as Prometheus' `varianceOverTime`. `None` for no values.
pub(super) fn variance_over_time(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut count, mut mean, mut mean_c, mut squares, mut squares_c) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for value in values {
        count += 1.0;
        let delta = value - (mean + mean_c);
        (mean, mean_c) = compensated_add(delta / count, mean, mean_c);
        (squares, squares_c) =
            compensated_add(delta * (value - (mean + mean_c)), squares, squares_c);
    }
    (count > 0.0).then(|| (squares + squares_c) / count)
}

/// Population variance as the `stdvar` aggregation: plain Welford, seeded with the first value
/// (a NaN or infinite first value makes the result NaN), as Prometheus' `aggregation`. `None`
/// for no values.
pub(super) fn variance_of_group(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values = values.into_iter();
    let first = values.next()?;
    let mut squares = if first.is_finite() { 0.0 } else { f64::NAN };
    let (mut mean, mut count) = (first, 1.0);
    for value in values {
        count += 1.0;
        let delta = value - mean;
        mean += delta / count;
        squares += delta * (value - mean);
    }
    Some(squares / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensated_sum_keeps_small_terms_next_to_large_ones() {
        assert_eq!(sum([2.0, 8.0, 1e100, -1e100]), 10.0);
        assert_eq!(sum([1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum([0.1; 10]), 1.0);
        assert_eq!(sum([f64::MAX, f64::MAX]), f64::INFINITY);
        assert!(sum([f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert_eq!(sum(std::iter::empty()), 0.0);
    }

    #[test]
    fn means_switch_to_incremental_form_instead_of_overflowing() {
        let huge = [1e308, 1.5e308, 1.2e308];
        for mean in [mean_over_time(huge), mean_of_group(huge)] {
            let mean = mean.unwrap_or(f64::NAN);
            assert!(mean.is_finite(), "{mean}");
            assert!((mean - 1.2333333333333333e308).abs() < 1e293, "{mean}");
        }
        assert_eq!(mean_over_time([f64::MAX, f64::MAX]), Some(f64::MAX));
        assert_eq!(mean_of_group([f64::MAX, f64::MAX]), Some(f64::MAX));
        assert_eq!(mean_over_time([2.0, 8.0, 1e100, -1e100]), Some(2.5));
        assert_eq!(mean_of_group([2.0, 8.0, 1e100, -1e100]), Some(2.5));
        assert_eq!(mean_over_time(std::iter::empty()), None);
        assert_eq!(mean_of_group(std::iter::empty()), None);
    }

    #[test]
    fn group_mean_stays_infinite_past_an_infinite_value() {
        let values = [1.0, f64::INFINITY, 2.0, f64::INFINITY];
        assert_eq!(mean_of_group(values), Some(f64::INFINITY));
        assert!(
            mean_of_group([1.0, f64::INFINITY, f64::NEG_INFINITY])
                .unwrap_or(0.0)
                .is_nan()
        );
    }

    #[test]
    fn variance_of_identical_values_is_exactly_zero() {
        // The two-pass formula leaves rounding noise for such values.
        let same = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1];
        assert_eq!(variance_over_time(same), Some(0.0));
        assert_eq!(variance_of_group(same), Some(0.0));
        let large = [1e15 + 0.3; 5];
        assert_eq!(variance_over_time(large), Some(0.0));
        assert_eq!(variance_of_group(large), Some(0.0));
    }

    #[test]
    fn variance_matches_the_population_formula() {
        let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(variance_over_time(values), Some(4.0));
        assert_eq!(variance_of_group(values), Some(4.0));
        assert_eq!(variance_over_time([3.0]), Some(0.0));
        assert_eq!(variance_of_group([3.0]), Some(0.0));
        assert!(variance_of_group([f64::NAN, 1.0]).unwrap_or(0.0).is_nan());
        assert!(
            variance_of_group([f64::INFINITY]).unwrap_or(0.0).is_nan(),
            "an infinite seed makes NaN, as in Prometheus"
        );
        assert_eq!(variance_over_time(std::iter::empty()), None);
    }
}
