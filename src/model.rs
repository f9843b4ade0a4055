//! The shared vocabulary: labels, metric kinds and the batches collectors hand to the history.
//!
//! Every other module speaks these types, so a collector, the history store, the exposition and
//! (later) the rule evaluator agree on what a series is without converting between label types.

use std::fmt;

/// The label name that carries the metric name, as in Prometheus.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// A series' label set, metric name included as `__name__`, sorted by label name.
///
/// Sorting once at construction makes equality, hashing and rendering order-independent.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds a label set for `name` with the given extra labels. Empty values are dropped,
    /// because Prometheus treats an empty label value as an absent label.
    pub fn new(name: &str, labels: &[(&str, &str)]) -> Labels {
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(labels.len() + 1);
        pairs.push((METRIC_NAME_LABEL.to_string(), name.to_string()));
        for (key, value) in labels {
            if !value.is_empty() {
                pairs.push(((*key).to_string(), (*value).to_string()));
            }
        }
        pairs.sort();
        pairs.dedup_by(|later, earlier| later.0 == earlier.0);
        Labels(pairs)
    }

    /// Builds a label set from arbitrary pairs (no `__name__` added), as alerts carry them.
    /// Empty values are dropped and a repeated name keeps its first value.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Labels {
        let mut pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| later.0 == earlier.0);
        Labels(pairs)
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The metric name (the `__name__` label), or "" when absent.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME_LABEL).unwrap_or("")
    }

    /// The value of one label.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(key, _)| key.as_str().cmp(name))
            .ok()
            .map(|index| self.0[index].1.as_str())
    }

    /// All labels, `__name__` included, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Heap bytes held by this label set, for the history's memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(String, String)>()
            + self
                .0
                .iter()
                .map(|(k, v)| k.capacity() + v.capacity())
                .sum::<usize>()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{{", self.metric_name())?;
        let mut first = true;
        for (key, value) in self.iter().filter(|(k, _)| *k != METRIC_NAME_LABEL) {
            if !first {
                write!(f, ",")?;
            }
            first = false;
            write!(f, "{key}={value:?}")?;
        }
        write!(f, "}}")
    }
}

/// The Prometheus metric type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    /// Samples named `<family>_bucket` (with `le`), `<family>_sum` and `<family>_count`.
    Histogram,
    Untyped,
}

impl MetricKind {
    /// The word used on a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Untyped => "untyped",
        }
    }
}

/// Name, HELP and TYPE of a metric family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyMeta {
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
}

/// One collection's output: every sample a collector saw, all stamped with one timestamp by the
/// scheduler when the batch is written to the history.
///
/// A series that was in a source's previous batch and is missing from this one is marked stale,
/// so a batch must always be complete for its source.
#[derive(Debug, Default)]
pub struct Batch {
    pub families: Vec<FamilyMeta>,
    pub samples: Vec<(Labels, f64)>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Declares a family; repeated declarations of the same name are ignored.
    pub fn family(&mut self, name: &str, kind: MetricKind, help: &str) {
        if !self.families.iter().any(|f| f.name == name) {
            self.families.push(FamilyMeta {
                name: name.to_string(),
                help: help.to_string(),
                kind,
            });
        }
    }

    /// Adds a sample of a family declared with [`Batch::family`].
    pub fn push(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.samples.push((Labels::new(name, labels), value));
    }

    /// Declares a family and adds one unlabelled sample to it.
    pub fn single(&mut self, name: &str, kind: MetricKind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.push(name, &[], value);
    }

    /// Declares a family and adds one sample with `labels` to it.
    pub fn single_labelled(
        &mut self,
        name: &str,
        kind: MetricKind,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        self.family(name, kind, help);
        self.push(name, labels, value);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Prometheus' staleness marker: a NaN with a specific bit pattern that means "this series ended".
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `value` is the staleness marker (an ordinary NaN is a real value and is not).
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// The staleness marker value.
pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_empty_values_dropped() {
        let labels = Labels::new("up", &[("z", "1"), ("a", "2"), ("empty", "")]);
        let names: Vec<&str> = labels.iter().map(|(k, _)| k).collect();
        assert_eq!(names, vec!["__name__", "a", "z"]);
        assert_eq!(labels.metric_name(), "up");
        assert_eq!(labels.get("a"), Some("2"));
        assert_eq!(labels.get("empty"), None);
    }

    #[test]
    fn stale_marker_is_not_an_ordinary_nan() {
        assert!(is_stale_marker(stale_marker()));
        assert!(!is_stale_marker(f64::NAN));
    }
}
