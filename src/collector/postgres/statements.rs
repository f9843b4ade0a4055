//! pg_stat_statements bookkeeping: per-interval deltas per statement, resets and queryid churn
//! handled, and the top N by time spent in the interval. Pure: rows in, deltas out.

use std::collections::HashMap;

/// Identity of a pg_stat_statements entry: oids, not names, so tracking hundreds of entries
/// every interval allocates nothing; names are looked up for the few entries exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatementKey {
    pub queryid: i64,
    pub userid: i64,
    pub dbid: i64,
}

/// Cumulative figures of one entry (times in milliseconds, as PostgreSQL reports them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StatementTotals {
    pub calls: f64,
    pub exec_ms: f64,
    pub rows: f64,
    pub shared_blks_hit: f64,
    pub shared_blks_read: f64,
    pub blk_read_ms: f64,
    pub blk_write_ms: f64,
}

impl StatementTotals {
    fn minus(&self, earlier: &StatementTotals) -> StatementTotals {
        StatementTotals {
            calls: self.calls - earlier.calls,
            exec_ms: self.exec_ms - earlier.exec_ms,
            rows: self.rows - earlier.rows,
            shared_blks_hit: self.shared_blks_hit - earlier.shared_blks_hit,
            shared_blks_read: self.shared_blks_read - earlier.shared_blks_read,
            blk_read_ms: self.blk_read_ms - earlier.blk_read_ms,
            blk_write_ms: self.blk_write_ms - earlier.blk_write_ms,
        }
    }

    /// Mean execution time per call in seconds, 0 without calls.
    pub fn mean_seconds(&self) -> f64 {
        if self.calls > 0.0 {
            self.exec_ms / self.calls / 1000.0
        } else {
            0.0
        }
    }
}

/// One entry's current totals and what happened since the previous collection.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementDelta {
    pub key: StatementKey,
    pub totals: StatementTotals,
    pub delta: StatementTotals,
}

/// Remembers the previous totals of every entry.
#[derive(Debug, Default)]
pub struct StatementTracker {
    /// Totals and the generation that last saw the entry.
    previous: HashMap<StatementKey, (StatementTotals, u64)>,
    generation: u64,
    primed: bool,
}

impl StatementTracker {
    /// Takes the current rows and returns the entries called since the last call with their
    /// change, or `None` the first time (there is no interval yet). An entry whose calls went
    /// down was reset (`pg_stat_statements_reset()`, or evicted and re-added): its whole current
    /// total counts as the interval's. Entries that disappeared are forgotten, so memory follows
    /// `pg_stat_statements.max`. Known entries are updated in place: a collection allocates only
    /// for entries that are new or were called.
    pub fn update(
        &mut self,
        current: Vec<(StatementKey, StatementTotals)>,
    ) -> Option<Vec<StatementDelta>> {
        self.generation += 1;
        let generation = self.generation;
        let primed = self.primed;
        let mut deltas = Vec::new();
        for (key, totals) in current {
            let delta = match self.previous.get_mut(&key) {
                Some((previous, seen)) => {
                    let delta = if totals.calls >= previous.calls {
                        totals.minus(previous)
                    } else {
                        totals
                    };
                    *previous = totals;
                    *seen = generation;
                    delta
                }
                None => {
                    self.previous.insert(key, (totals, generation));
                    totals
                }
            };
            if primed && delta.calls > 0.0 {
                deltas.push(StatementDelta { key, totals, delta });
            }
        }
        self.previous.retain(|_, (_, seen)| *seen == generation);
        self.primed = true;
        primed.then_some(deltas)
    }

    /// Forgets everything, e.g. after the server restarted.
    pub fn reset(&mut self) {
        self.previous.clear();
        self.primed = false;
    }
}

/// The `n` entries that spent the most execution time in the interval, among those called.
pub fn top_by_interval_time(deltas: &[StatementDelta], n: usize) -> Vec<&StatementDelta> {
    let mut called: Vec<&StatementDelta> = deltas.iter().filter(|d| d.delta.calls > 0.0).collect();
    called.sort_by(|a, b| {
        b.delta
            .exec_ms
            .total_cmp(&a.delta.exec_ms)
            .then_with(|| a.key.cmp(&b.key))
    });
    called.truncate(n);
    called
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(queryid: i64) -> StatementKey {
        StatementKey {
            queryid,
            userid: 10,
            dbid: 5,
        }
    }

    fn totals(calls: f64, exec_ms: f64) -> StatementTotals {
        StatementTotals {
            calls,
            exec_ms,
            ..StatementTotals::default()
        }
    }

    #[test]
    fn first_update_primes_then_deltas_follow() {
        let mut tracker = StatementTracker::default();
        assert_eq!(tracker.update(vec![(key(1), totals(10.0, 100.0))]), None);
        let deltas = tracker.update(vec![
            (key(1), totals(15.0, 160.0)),
            (key(2), totals(1.0, 5.0)),
        ]);
        let deltas = deltas.unwrap_or_default();
        assert_eq!(deltas[0].delta, totals(5.0, 60.0));
        assert_eq!(
            deltas[1].delta,
            totals(1.0, 5.0),
            "a new entry counts whole"
        );
    }

    #[test]
    fn a_reset_counts_the_new_totals_and_top_n_orders_by_interval_time() {
        let mut tracker = StatementTracker::default();
        tracker.update(vec![
            (key(1), totals(100.0, 1_000.0)),
            (key(2), totals(5.0, 10.0)),
            (key(3), totals(1.0, 1.0)),
        ]);
        let deltas = tracker
            .update(vec![
                (key(1), totals(2.0, 4_000.0)),
                (key(2), totals(6.0, 20.0)),
                (key(3), totals(1.0, 1.0)),
            ])
            .unwrap_or_default();
        assert_eq!(deltas[0].delta, totals(2.0, 4_000.0));
        let top = top_by_interval_time(&deltas, 5);
        let ids: Vec<i64> = top.iter().map(|d| d.key.queryid).collect();
        assert_eq!(ids, vec![1, 2], "entry 3 was not called in the interval");
        assert!((top[0].delta.mean_seconds() - 2.0).abs() < 1e-9);
    }
}
