//! An alert as Alertmanager holds it, its fingerprint, and the pure store that merges updates.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::Labels;

/// One alert: its identity is its label set; `ends_at_ms` in the past means resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at_ms: i64,
    /// When the alert resolves (or resolved); 0 when unknown, as Alertmanager's zero time.
    pub ends_at_ms: i64,
    pub generator_url: String,
    pub updated_at_ms: i64,
}

impl Alert {
    /// Alertmanager's fingerprint (prometheus/common `LabelSet.Fingerprint`): FNV-1a 64 over
    /// the names and values sorted by name, each followed by the 0xff separator byte.
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    /// True when the alert has an end time that is not after `now_ms`.
    pub fn is_resolved_at(&self, now_ms: i64) -> bool {
        self.ends_at_ms != 0 && self.ends_at_ms <= now_ms
    }
}

/// The fingerprint of a label set, as prometheus/common computes it.
pub fn fingerprint(labels: &Labels) -> u64 {
    const OFFSET: u64 = 14695981039346656037;
    const PRIME: u64 = 1099511628211;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels.iter() {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    hash
}

/// The active alerts by fingerprint, merged as Alertmanager's API merges a re-sent alert.
#[derive(Clone, Debug)]
pub struct AlertStore {
    alerts: BTreeMap<u64, Alert>,
    resolve_timeout_ms: i64,
}

impl Default for AlertStore {
    fn default() -> AlertStore {
        AlertStore {
            alerts: BTreeMap::new(),
            resolve_timeout_ms: 5 * 60 * 1000,
        }
    }
}

impl AlertStore {
    pub fn new() -> AlertStore {
        AlertStore::default()
    }

    /// Sets `global.resolve_timeout`: an alert received without an end time ends this long
    /// after it was received, unless it is sent again (Alertmanager's API does the same).
    pub fn set_resolve_timeout(&mut self, timeout: Duration) {
        self.resolve_timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    }

    /// Inserts or merges an alert and returns the stored result. An update of a still-active
    /// alert keeps the earliest start and takes the new end (Alertmanager's `Alert.Merge`); an
    /// update of an alert that had already resolved starts a new one.
    pub fn upsert(&mut self, mut alert: Alert, now_ms: i64) -> &Alert {
        let fingerprint = alert.fingerprint();
        alert.updated_at_ms = now_ms;
        if alert.ends_at_ms == 0 {
            alert.ends_at_ms = now_ms.saturating_add(self.resolve_timeout_ms);
        }
        if let Some(old) = self.alerts.get(&fingerprint)
            && !old.is_resolved_at(now_ms)
            && old.starts_at_ms < alert.starts_at_ms
        {
            alert.starts_at_ms = old.starts_at_ms;
        }
        self.alerts.insert(fingerprint, alert);
        &self.alerts[&fingerprint]
    }

    /// Drops alerts that resolved more than `retention` before `now_ms`, and returns them.
    pub fn gc(&mut self, now_ms: i64, retention: Duration) -> Vec<Alert> {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(retention_ms);
        let expired: Vec<u64> = self
            .alerts
            .iter()
            .filter(|(_, alert)| alert.is_resolved_at(cutoff))
            .map(|(fingerprint, _)| *fingerprint)
            .collect();
        expired
            .into_iter()
            .filter_map(|fingerprint| self.alerts.remove(&fingerprint))
            .collect()
    }

    /// The alert with this fingerprint.
    pub fn get(&self, fingerprint: u64) -> Option<&Alert> {
        self.alerts.get(&fingerprint)
    }

    /// Every stored alert, in fingerprint order.
    pub fn iter(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &[(&str, &str)], starts: i64, ends: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs(labels.iter().copied()),
            annotations: Labels::from_pairs(Vec::<(String, String)>::new()),
            starts_at_ms: starts,
            ends_at_ms: ends,
            generator_url: String::new(),
            updated_at_ms: 0,
        }
    }

    #[test]
    fn fingerprints_are_alertmanagers() {
        // Values from prometheus/common model/signature_test.go (TestLabelsToSignature and
        // TestFingerprint use the same FNV-1a construction).
        let empty = Labels::from_pairs(Vec::<(String, String)>::new());
        assert_eq!(fingerprint(&empty), 14695981039346656037);
        let labels =
            Labels::from_pairs([("name", "garland, briggs"), ("fear", "love is not enough")]);
        assert_eq!(fingerprint(&labels), 5799056148416392346);
    }

    #[test]
    fn upsert_keeps_the_earliest_start_and_takes_the_new_end() {
        let mut store = AlertStore::new();
        store.upsert(alert(&[("alertname", "A")], 1_000, 10_000), 1_000);
        let merged = store.upsert(alert(&[("alertname", "A")], 5_000, 20_000), 5_000);
        assert_eq!((merged.starts_at_ms, merged.ends_at_ms), (1_000, 20_000));
        // Resolved before the update: the update is a new alert.
        store.upsert(alert(&[("alertname", "B")], 1_000, 2_000), 1_000);
        let fresh = store.upsert(alert(&[("alertname", "B")], 9_000, 30_000), 9_000);
        assert_eq!(fresh.starts_at_ms, 9_000);
        let gone = store.gc(30_000 + 60_000, Duration::from_secs(30));
        assert_eq!(gone.len(), 2);
        assert!(store.is_empty());
        // No end time: it ends resolve_timeout after it was received.
        store.set_resolve_timeout(Duration::from_secs(60));
        let open = store.upsert(alert(&[("alertname", "C")], 1_000, 0), 2_000);
        assert_eq!(open.ends_at_ms, 62_000);
    }
}
