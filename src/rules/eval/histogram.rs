//! `histogram_quantile` over classic buckets, following Prometheus' `BucketQuantile`.

use std::collections::BTreeMap;

use super::LabelSet;

/// `histogram_quantile` over classic buckets: series grouped by their labels without `le` and
/// the name; a series without a parseable `le` is ignored, as in Prometheus.
pub(super) fn histogram_quantile(q: f64, input: Vec<(LabelSet, f64)>) -> Vec<(LabelSet, f64)> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

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
}
