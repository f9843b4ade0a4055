//! Grouping and the notification log: Alertmanager's dispatcher (aggregation groups flushed
//! after `group_wait`, then every `group_interval`) and its DedupStage rule, pure, with time
//! passed in. The caller delivers each [`Flush`] and then calls [`NotificationLog::record`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::model::Labels;
use crate::notify::alert::Alert;
use crate::notify::config::AlertingConfig;
use crate::notify::route;
use crate::notify::time_interval::{self, NamedTimeIntervals};

/// One notification to deliver: a group's alerts for one receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flush {
    /// Alertmanager's group key: `{route key}:{group labels}`.
    pub group_key: String,
    pub receiver: String,
    pub group_labels: Labels,
    pub firing: Vec<Alert>,
    pub resolved: Vec<Alert>,
    pub route_key: String,
}

/// What was last sent for a group to a receiver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogEntry {
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    pub sent_at_ms: i64,
}

/// The notification log: (group key, receiver) to the last notification sent.
#[derive(Clone, Debug, Default)]
pub struct NotificationLog {
    entries: BTreeMap<(String, String), LogEntry>,
}

impl NotificationLog {
    pub fn new() -> NotificationLog {
        NotificationLog::default()
    }

    /// The entry for a group and receiver.
    pub fn get(&self, group_key: &str, receiver: &str) -> Option<&LogEntry> {
        self.entries
            .get(&(group_key.to_string(), receiver.to_string()))
    }

    /// Restores an entry (from the store at start).
    pub fn insert(&mut self, group_key: String, receiver: String, entry: LogEntry) {
        self.entries.insert((group_key, receiver), entry);
    }

    /// Records that a flush was sent (or queued durably for sending) at `now_ms`.
    pub fn record(&mut self, flush: &Flush, now_ms: i64) {
        let entry = LogEntry {
            firing: flush.firing.iter().map(Alert::fingerprint).collect(),
            resolved: flush.resolved.iter().map(Alert::fingerprint).collect(),
            sent_at_ms: now_ms,
        };
        self.insert(flush.group_key.clone(), flush.receiver.clone(), entry);
    }

    /// Drops entries not sent since `cutoff_ms` (Alertmanager keeps them for its retention).
    pub fn gc(&mut self, cutoff_ms: i64) {
        self.entries
            .retain(|_, entry| entry.sent_at_ms >= cutoff_ms);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&(String, String), &LogEntry)> {
        self.entries.iter()
    }

    /// Alertmanager's DedupStage: notify when nothing was sent yet and something fires, when a
    /// firing alert was not in the last notification, when everything resolved that had been
    /// notified as firing, when the resolved set changed and resolved alerts are wanted, or when
    /// the repeat interval has passed.
    pub fn needs_update(
        &self,
        flush: &Flush,
        send_resolved: bool,
        repeat_interval_ms: i64,
        now_ms: i64,
    ) -> bool {
        let firing: BTreeSet<u64> = flush.firing.iter().map(Alert::fingerprint).collect();
        let resolved: BTreeSet<u64> = flush.resolved.iter().map(Alert::fingerprint).collect();
        let Some(entry) = self.get(&flush.group_key, &flush.receiver) else {
            return !firing.is_empty();
        };
        if !firing.is_subset(&entry.firing) {
            return true;
        }
        if firing.is_empty() {
            return !entry.firing.is_empty();
        }
        if send_resolved && !resolved.is_subset(&entry.resolved) {
            return true;
        }
        entry.sent_at_ms < now_ms.saturating_sub(repeat_interval_ms)
    }
}

/// One aggregation group: a route's alerts with the same group labels.
#[derive(Clone, Debug)]
struct Group {
    /// Index of the route in the tree's depth-first walk.
    route: usize,
    labels: Labels,
    key: String,
    alerts: BTreeMap<u64, Alert>,
    next_flush_ms: i64,
    has_flushed: bool,
}

/// The dispatcher: routes alerts into groups and says which groups are due.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    config: Arc<AlertingConfig>,
    groups: BTreeMap<String, Group>,
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Dispatcher {
    pub fn new(config: Arc<AlertingConfig>) -> Dispatcher {
        Dispatcher {
            config,
            groups: BTreeMap::new(),
        }
    }

    /// The configuration the dispatcher routes with.
    pub fn config(&self) -> &AlertingConfig {
        &self.config
    }

    /// Puts alerts into their groups (new or updated), creating groups as needed. A new group
    /// flushes after `group_wait`, or at once when its alert started longer ago than that.
    pub fn insert(&mut self, alerts: impl IntoIterator<Item = Alert>, now_ms: i64) {
        let config = Arc::clone(&self.config);
        let routes = config.route.walk();
        for alert in alerts {
            for matched in config.route.matching(&alert.labels) {
                let index = routes
                    .iter()
                    .position(|r| std::ptr::eq(*r, matched))
                    .unwrap_or(0);
                let labels = matched.group_labels(&alert.labels);
                let key = format!("{}:{}", matched.key(), route::display_labels(&labels));
                let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
                    route: index,
                    labels,
                    key,
                    alerts: BTreeMap::new(),
                    next_flush_ms: now_ms.saturating_add(millis(matched.group_wait)),
                    has_flushed: false,
                });
                if !group.has_flushed
                    && alert
                        .starts_at_ms
                        .saturating_add(millis(matched.group_wait))
                        < now_ms
                {
                    group.next_flush_ms = group.next_flush_ms.min(now_ms);
                }
                group.alerts.insert(alert.fingerprint(), alert.clone());
            }
        }
    }

    /// The earliest time a group is due, if any group exists.
    pub fn next_due(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next_flush_ms).min()
    }

    /// Flushes every group due at `now_ms`: the alerts not inhibited or silenced, split into
    /// firing and resolved, for the route's receiver, when the notification log says a
    /// notification is needed and the route's time intervals allow it. Resolved alerts leave
    /// their group once flushed, and empty groups are dropped.
    pub fn flush_due(
        &mut self,
        now_ms: i64,
        log: &NotificationLog,
        inhibited: impl Fn(&Alert) -> bool,
        silenced: impl Fn(&Alert) -> bool,
        time_intervals: &NamedTimeIntervals,
    ) -> Vec<Flush> {
        let config = Arc::clone(&self.config);
        let routes = config.route.walk();
        let mut flushes = Vec::new();
        let due: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.next_flush_ms <= now_ms)
            .map(|g| g.key.clone())
            .collect();
        for key in due {
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            let Some(route) = routes.get(group.route).copied() else {
                continue;
            };
            group.has_flushed = true;
            group.next_flush_ms = now_ms.saturating_add(millis(route.group_interval));
            let mut firing = Vec::new();
            let mut resolved = Vec::new();
            let mut done = Vec::new();
            for (fingerprint, alert) in &group.alerts {
                let is_resolved = alert.is_resolved_at(now_ms);
                if is_resolved {
                    done.push(*fingerprint);
                }
                // Alertmanager's MuteStage filters resolved alerts as well as firing ones.
                if inhibited(alert) || silenced(alert) {
                    continue;
                }
                if is_resolved {
                    resolved.push(alert.clone());
                } else {
                    firing.push(alert.clone());
                }
            }
            for fingerprint in done {
                group.alerts.remove(&fingerprint);
            }
            let muted =
                time_interval::any_contains(time_intervals, &route.mute_time_intervals, now_ms);
            let inactive = !route.active_time_intervals.is_empty()
                && !time_interval::any_contains(
                    time_intervals,
                    &route.active_time_intervals,
                    now_ms,
                );
            let flush = Flush {
                group_key: group.key.clone(),
                receiver: route.receiver.clone(),
                group_labels: group.labels.clone(),
                firing,
                resolved,
                route_key: route.key().to_string(),
            };
            let send_resolved = config
                .receiver(&route.receiver)
                .is_some_and(|r| r.send_resolved());
            if !muted
                && !inactive
                && log.needs_update(&flush, send_resolved, millis(route.repeat_interval), now_ms)
            {
                flushes.push(flush);
            }
        }
        self.groups.retain(|_, g| !g.alerts.is_empty());
        flushes
    }
}
