//! The history store: the latest value and a bounded, compressed recent history of every series.
//!
//! It is the single source of truth: collectors write batches into it, `/metrics` renders its
//! latest values, and rules and analyses read sample ranges from it. It does no IO and never reads
//! the clock: every timestamp comes in as a parameter, which keeps it testable and deterministic.

mod chunk;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// The label-set index is hashed on every sample; foldhash is several times faster than
/// SipHash and still seeded per process.
type FastMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;
use std::sync::Arc;

pub use chunk::{Chunk, MAX_SAMPLES_PER_CHUNK, SealedChunk};

use crate::model::{Batch, FamilyMeta, Labels, MetricKind, is_stale_marker, stale_marker};

/// Bounds that keep the store's memory finite whatever the collectors send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// How long samples are kept, in milliseconds.
    pub retention_ms: i64,
    /// The most series held at once; samples of new series beyond it are dropped and counted.
    pub max_series: usize,
}

impl Default for HistoryLimits {
    fn default() -> HistoryLimits {
        HistoryLimits {
            retention_ms: 3_600_000,
            max_series: 100_000,
        }
    }
}

/// What one batch did to the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub appended: usize,
    pub new_series: usize,
    /// Samples of new series refused because the series cap was reached.
    pub dropped_over_cap: usize,
    /// Samples not newer than their series' last sample.
    pub out_of_order: usize,
    /// Series of this source that were missing from the batch and got a stale marker.
    pub marked_stale: usize,
}

/// Size figures for self-monitoring and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HistoryStats {
    pub series: usize,
    pub samples: usize,
    /// Bytes of the compressed sample chunks: encoded bytes plus the sealed chunks' headers.
    pub sample_bytes: usize,
    /// Everything the store holds: chunks, series headers, label sets and indexes.
    pub total_bytes: usize,
    pub dropped_series_total: u64,
}

impl HistoryStats {
    /// Average cost of one stored sample in the compressed chunks.
    pub fn bytes_per_sample(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.sample_bytes as f64 / self.samples as f64
        }
    }
}

/// A series' identity within the store. Ids are reused after a series is removed.
type SeriesId = u32;

#[derive(Debug)]
struct Series {
    labels: Arc<Labels>,
    /// Full chunks, oldest first.
    sealed: VecDeque<SealedChunk>,
    /// The chunk being appended to.
    head: Option<Chunk>,
    last_ts: i64,
    last_value: f64,
}

#[derive(Debug)]
struct Family {
    meta: FamilyMeta,
    members: BTreeMap<Arc<Labels>, SeriesId>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct History {
    limits: HistoryLimits,
    slots: Vec<Option<Series>>,
    free_slots: Vec<SeriesId>,
    index: FastMap<Arc<Labels>, SeriesId>,
    families: BTreeMap<String, Family>,
    /// The series each source wrote in its last batch, for staleness.
    sources: HashMap<String, Vec<SeriesId>>,
    dropped_series_total: u64,
}

/// One series' samples in a time range, oldest first, stale markers included.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesRange {
    pub labels: Arc<Labels>,
    pub samples: Vec<(i64, f64)>,
}

impl History {
    pub fn new(limits: HistoryLimits) -> History {
        History {
            limits,
            ..History::default()
        }
    }

    pub fn limits(&self) -> HistoryLimits {
        self.limits
    }

    /// Applies new limits; a lower series cap takes effect for new series only.
    pub fn set_limits(&mut self, limits: HistoryLimits) {
        self.limits = limits;
    }

    pub fn series_count(&self) -> usize {
        self.index.len()
    }

    /// Writes one source's batch at `ts` (milliseconds since the epoch) and marks the source's
    /// series that are missing from it as stale.
    pub fn ingest(&mut self, source: &str, ts: i64, batch: Batch) -> IngestReport {
        let mut report = IngestReport::default();
        for meta in batch.families {
            self.declare_family(meta);
        }
        let mut written: Vec<SeriesId> = Vec::with_capacity(batch.samples.len());
        for (labels, value) in batch.samples {
            let id = match self.index.get(&labels) {
                Some(&id) => id,
                None => {
                    if self.index.len() >= self.limits.max_series {
                        report.dropped_over_cap += 1;
                        self.dropped_series_total += 1;
                        continue;
                    }
                    report.new_series += 1;
                    self.insert_series(labels)
                }
            };
            if self.append(id, ts, value) {
                report.appended += 1;
            } else {
                report.out_of_order += 1;
            }
            written.push(id);
        }
        // A series of this source not written at `ts` was missing from the batch: it ends here.
        let previous = self.sources.remove(source).unwrap_or_default();
        for id in previous {
            let missing = self.slots[id as usize]
                .as_ref()
                .is_some_and(|series| series.last_ts < ts);
            if missing && self.mark_stale(id, ts) {
                report.marked_stale += 1;
            }
        }
        self.sources.insert(source.to_string(), written);
        report
    }

    /// Marks every series of a source stale and forgets the source, as when a collector is
    /// removed by a reload.
    pub fn retire_source(&mut self, source: &str, ts: i64) -> usize {
        let ids = self.sources.remove(source).unwrap_or_default();
        ids.into_iter()
            .filter(|&id| self.mark_stale(id, ts))
            .count()
    }

    /// Names of the sources that have written a batch.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// Drops samples older than the retention and series with nothing left in it.
    pub fn trim(&mut self, now: i64) {
        let cutoff = now - self.limits.retention_ms;
        let mut removed: Vec<SeriesId> = Vec::new();
        for (id, slot) in self.slots.iter_mut().enumerate() {
            let Some(series) = slot else { continue };
            while series
                .sealed
                .front()
                .is_some_and(|chunk| chunk.last_timestamp() < cutoff)
            {
                series.sealed.pop_front();
            }
            if series.sealed.len() * 2 < series.sealed.capacity() {
                series.sealed.shrink_to_fit();
            }
            if series
                .head
                .as_ref()
                .is_some_and(|head| head.last_timestamp() < cutoff)
            {
                series.head = None;
            }
            if series.sealed.is_empty() && series.head.is_none() {
                removed.push(id as SeriesId);
            }
        }
        if removed.is_empty() {
            return;
        }
        let removed_set: HashSet<SeriesId> = removed.iter().copied().collect();
        for ids in self.sources.values_mut() {
            ids.retain(|id| !removed_set.contains(id));
        }
        for id in removed {
            if let Some(series) = self.slots[id as usize].take() {
                self.index.remove(&series.labels);
                let name = self.family_name_of(series.labels.metric_name());
                if let Some(family) = self.families.get_mut(&name) {
                    family.members.remove(&series.labels);
                    if family.members.is_empty() {
                        self.families.remove(&name);
                    }
                }
                self.free_slots.push(id);
            }
        }
    }

    /// Calls `visit` for each family with its live series' latest values, families sorted by
    /// name and series by labels. Series whose last sample is a stale marker are left out, as are
    /// families with no live series.
    pub fn for_each_latest(&self, mut visit: impl FnMut(&FamilyMeta, &[(&Labels, f64)])) {
        let mut live: Vec<(&Labels, f64)> = Vec::new();
        for family in self.families.values() {
            live.clear();
            for &id in family.members.values() {
                if let Some(series) = &self.slots[id as usize]
                    && !is_stale_marker(series.last_value)
                {
                    live.push((&series.labels, series.last_value));
                }
            }
            if !live.is_empty() {
                visit(&family.meta, &live);
            }
        }
    }

    /// The latest sample of one series, if it is live.
    pub fn latest(&self, labels: &Labels) -> Option<(i64, f64)> {
        let id = *self.index.get(labels)?;
        let series = self.slots[id as usize].as_ref()?;
        (!is_stale_marker(series.last_value)).then_some((series.last_ts, series.last_value))
    }

    /// Names of every family, sorted.
    pub fn family_names(&self) -> impl Iterator<Item = &str> {
        self.families.keys().map(String::as_str)
    }

    /// Metadata of a family.
    pub fn family(&self, name: &str) -> Option<&FamilyMeta> {
        self.families.get(name).map(|f| &f.meta)
    }

    /// Samples with `start <= ts <= end` of every series of metric `name` whose labels satisfy
    /// `matches`. Stale markers are included so callers can apply Prometheus' staleness rules.
    pub fn select(
        &self,
        name: &str,
        matches: impl Fn(&Labels) -> bool,
        start: i64,
        end: i64,
    ) -> Vec<SeriesRange> {
        let Some(family) = self.families.get(&self.family_name_of(name)) else {
            return Vec::new();
        };
        family
            .members
            .iter()
            .filter(|(labels, _)| labels.metric_name() == name && matches(labels))
            .filter_map(|(_, &id)| self.slots[id as usize].as_ref())
            .map(|series| SeriesRange {
                labels: Arc::clone(&series.labels),
                samples: range_of(series, start, end),
            })
            .filter(|range| !range.samples.is_empty())
            .collect()
    }

    /// Size figures; walks every series, so call it on a maintenance tick, not per sample.
    pub fn stats(&self) -> HistoryStats {
        let mut stats = HistoryStats {
            series: self.index.len(),
            dropped_series_total: self.dropped_series_total,
            ..HistoryStats::default()
        };
        let sealed_header = std::mem::size_of::<SealedChunk>();
        let mut label_bytes = 0;
        for series in self.slots.iter().flatten() {
            for chunk in &series.sealed {
                stats.samples += chunk.len();
                stats.sample_bytes += chunk.heap_bytes();
            }
            // Unused deque slots cost their size too.
            stats.sample_bytes += series.sealed.capacity() * sealed_header;
            if let Some(head) = &series.head {
                stats.samples += head.len();
                stats.sample_bytes += head.heap_bytes();
            }
            label_bytes += series.labels.heap_bytes() + std::mem::size_of::<Labels>();
        }
        let slot_bytes = self.slots.capacity() * std::mem::size_of::<Option<Series>>();
        // A hash map entry costs the key, the value and about one control byte, twice over for
        // the index and the family member maps.
        let index_bytes = self.index.capacity() * (std::mem::size_of::<(Arc<Labels>, u32)>() + 1)
            + self.index.len() * (std::mem::size_of::<(Arc<Labels>, u32)>() + 16);
        stats.total_bytes = stats.sample_bytes + label_bytes + slot_bytes + index_bytes;
        stats
    }

    /// The family a sample name belongs to: `x_bucket`, `x_sum` and `x_count` belong to a
    /// declared histogram `x`, every other name to itself.
    fn family_name_of(&self, name: &str) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && self
                    .families
                    .get(base)
                    .is_some_and(|f| f.meta.kind == MetricKind::Histogram)
            {
                return base.to_string();
            }
        }
        name.to_string()
    }

    fn declare_family(&mut self, meta: FamilyMeta) {
        match self.families.get_mut(&meta.name) {
            Some(family) => {
                if family.meta != meta {
                    family.meta = meta;
                }
            }
            None => {
                self.families.insert(
                    meta.name.clone(),
                    Family {
                        meta,
                        members: BTreeMap::new(),
                    },
                );
            }
        }
    }

    fn insert_series(&mut self, labels: Labels) -> SeriesId {
        let labels = Arc::new(labels);
        let series = Series {
            labels: Arc::clone(&labels),
            sealed: VecDeque::new(),
            head: None,
            last_ts: i64::MIN,
            last_value: stale_marker(),
        };
        let id = match self.free_slots.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(series);
                id
            }
            None => {
                self.slots.push(Some(series));
                (self.slots.len() - 1) as SeriesId
            }
        };
        self.index.insert(Arc::clone(&labels), id);
        let name = self.family_name_of(labels.metric_name());
        let family = self.families.entry(name.clone()).or_insert_with(|| Family {
            // A sample without a declared family is exposed as untyped rather than lost.
            meta: FamilyMeta {
                help: format!("{name} (no description given by its collector)."),
                name,
                kind: MetricKind::Untyped,
            },
            members: BTreeMap::new(),
        });
        family.members.insert(labels, id);
        id
    }

    /// Appends to a series; false when `ts` is not after its last sample.
    fn append(&mut self, id: SeriesId, ts: i64, value: f64) -> bool {
        let max_span = (self.limits.retention_ms / 4).clamp(1, 15 * 60 * 1000);
        let Some(series) = self.slots[id as usize].as_mut() else {
            return false;
        };
        if ts <= series.last_ts {
            return false;
        }
        let head_is_done = series
            .head
            .as_ref()
            .is_some_and(|head| head.is_full() || ts - head.first_timestamp() >= max_span);
        if head_is_done && let Some(full) = series.head.take() {
            series.sealed.push_back(full.seal());
        }
        series.head.get_or_insert_with(Chunk::new).append(ts, value);
        series.last_ts = ts;
        series.last_value = value;
        true
    }

    fn mark_stale(&mut self, id: SeriesId, ts: i64) -> bool {
        let already_stale = self.slots[id as usize]
            .as_ref()
            .is_none_or(|series| is_stale_marker(series.last_value));
        !already_stale && self.append(id, ts, stale_marker())
    }
}

fn range_of(series: &Series, start: i64, end: i64) -> Vec<(i64, f64)> {
    let mut samples = Vec::new();
    let in_range = |(first, last): (i64, i64)| last >= start && first <= end;
    for chunk in &series.sealed {
        if in_range((chunk.first_timestamp(), chunk.last_timestamp())) {
            samples.extend(chunk.iter().filter(|&(ts, _)| ts >= start && ts <= end));
        }
    }
    if let Some(head) = &series.head
        && in_range((head.first_timestamp(), head.last_timestamp()))
    {
        samples.extend(head.iter().filter(|&(ts, _)| ts >= start && ts <= end));
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (metric name, labels, value)
    type Sample<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

    fn batch(samples: &[Sample<'_>]) -> Batch {
        let mut batch = Batch::new();
        for (name, labels, value) in samples {
            batch.family(name, MetricKind::Gauge, "test");
            batch.push(name, labels, *value);
        }
        batch
    }

    fn latest(history: &History) -> Vec<String> {
        let mut out = Vec::new();
        history.for_each_latest(|_, series| {
            for (labels, value) in series {
                out.push(format!("{labels:?} {value}"));
            }
        });
        out
    }

    #[test]
    fn latest_values_skip_series_missing_from_the_next_batch() {
        let mut history = History::new(HistoryLimits::default());
        history.ingest(
            "host",
            1_000,
            batch(&[("a", &[("x", "1")], 1.0), ("a", &[("x", "2")], 2.0)]),
        );
        let report = history.ingest("host", 2_000, batch(&[("a", &[("x", "1")], 3.0)]));
        assert_eq!(report.marked_stale, 1);
        assert_eq!(latest(&history), vec![r#"a{x="1"} 3"#]);
        let range = history.select("a", |l| l.get("x") == Some("2"), 0, 5_000);
        assert_eq!(range.len(), 1);
        assert_eq!(range[0].samples[0], (1_000, 2.0));
        assert!(is_stale_marker(range[0].samples[1].1));
    }

    #[test]
    fn sources_do_not_stale_each_others_series() {
        let mut history = History::new(HistoryLimits::default());
        history.ingest("a", 1_000, batch(&[("m", &[("src", "a")], 1.0)]));
        history.ingest("b", 1_000, batch(&[("m", &[("src", "b")], 1.0)]));
        history.ingest("a", 2_000, batch(&[("m", &[("src", "a")], 2.0)]));
        assert_eq!(latest(&history).len(), 2);
        assert_eq!(history.retire_source("b", 3_000), 1);
        assert_eq!(latest(&history), vec![r#"m{src="a"} 2"#]);
    }

    #[test]
    fn series_cap_drops_and_counts_new_series_only() {
        let mut history = History::new(HistoryLimits {
            retention_ms: 60_000,
            max_series: 2,
        });
        let report = history.ingest(
            "s",
            1_000,
            batch(&[
                ("m", &[("i", "1")], 1.0),
                ("m", &[("i", "2")], 1.0),
                ("m", &[("i", "3")], 1.0),
            ]),
        );
        assert_eq!(report.dropped_over_cap, 1);
        assert_eq!(history.series_count(), 2);
        let report = history.ingest(
            "s",
            2_000,
            batch(&[("m", &[("i", "1")], 2.0), ("m", &[("i", "2")], 2.0)]),
        );
        assert_eq!(report.appended, 2);
        assert_eq!(history.stats().dropped_series_total, 1);
    }

    #[test]
    fn retention_trims_old_samples_and_removes_dead_series() {
        let mut history = History::new(HistoryLimits {
            retention_ms: 10_000,
            max_series: 10,
        });
        for step in 0..100 {
            let ts = step * 1_000;
            let mut samples: Vec<Sample<'_>> = vec![("kept", &[], step as f64)];
            if step < 20 {
                samples.push(("gone", &[], 1.0));
            }
            history.ingest("s", ts, batch(&samples));
            history.trim(ts);
        }
        assert_eq!(history.series_count(), 1);
        let range = history.select("kept", |_| true, 0, 100_000);
        // Whole chunks are dropped, so at most one chunk span (retention / 4) beyond the cutoff.
        let oldest = range[0].samples[0].0;
        assert!(
            (99_000 - 10_000 - 2_500..=89_000).contains(&oldest),
            "{oldest}"
        );
        assert_eq!(range[0].samples.last(), Some(&(99_000, 99.0)));
    }

    #[test]
    fn out_of_order_samples_are_refused() {
        let mut history = History::new(HistoryLimits::default());
        history.ingest("s", 2_000, batch(&[("m", &[], 1.0)]));
        let report = history.ingest("s", 2_000, batch(&[("m", &[], 2.0)]));
        assert_eq!(report.out_of_order, 1);
        assert_eq!(history.latest(&Labels::new("m", &[])), Some((2_000, 1.0)));
    }

    #[test]
    fn a_regular_series_costs_under_two_bytes_per_sample() {
        let mut history = History::new(HistoryLimits::default());
        let mut counter = 0.0;
        for step in 0..3_600 {
            counter += (step % 5) as f64 * 4096.0;
            history.ingest(
                "s",
                step * 1_000,
                batch(&[("bytes", &[], counter), ("size", &[], 1e12)]),
            );
        }
        let stats = history.stats();
        assert_eq!(stats.samples, 7_200);
        assert!(
            stats.bytes_per_sample() < 2.0,
            "{}",
            stats.bytes_per_sample()
        );
    }
}
