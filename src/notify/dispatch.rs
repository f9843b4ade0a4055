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
    /// By route (its index in the tree's walk) and group key: two routes may share a key.
    groups: BTreeMap<(usize, String), Group>,
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
                let group = self
                    .groups
                    .entry((index, key.clone()))
                    .or_insert_with(|| Group {
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
        let due: Vec<(usize, String)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush_ms <= now_ms)
            .map(|(k, _)| k.clone())
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CONFIG: &str = r#"
route:
  receiver: mail
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: [team="night"]
      receiver: hook
      mute_time_intervals: [night]
receivers:
  - name: mail
    webhook_configs: [{url: "http://127.0.0.1:1/", send_resolved: true}]
  - name: hook
    webhook_configs: [{url: "http://127.0.0.1:2/", send_resolved: false}]
time_intervals:
  - name: night
    time_intervals: [{times: [{start_time: "00:00", end_time: "06:00"}]}]
"#;

    const S: i64 = 1000;
    const MIN: i64 = 60 * S;
    /// 2026-12-02T12:00:00Z: midday, outside the `night` interval.
    const NOON: i64 = 1_796_212_800_000;

    fn dispatcher() -> Dispatcher {
        let config = AlertingConfig::parse(Path::new("t.yml"), CONFIG).expect("valid");
        Dispatcher::new(Arc::new(config))
    }

    fn alert(labels: &[(&str, &str)], starts: i64, ends: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs(labels.iter().copied()),
            annotations: Labels::from_pairs(Vec::<(String, String)>::new()),
            starts_at_ms: starts,
            ends_at_ms: ends,
            generator_url: String::new(),
            updated_at_ms: starts,
        }
    }

    /// Flushes at `now` with nothing inhibited or silenced, records what was sent, and returns
    /// (receiver, group key, firing count, resolved count) of each flush.
    fn tick(
        d: &mut Dispatcher,
        log: &mut NotificationLog,
        now: i64,
    ) -> Vec<(String, String, usize, usize)> {
        let intervals = d.config().time_intervals.clone();
        let flushes = d.flush_due(now, log, |_| false, |_| false, &intervals);
        for flush in &flushes {
            log.record(flush, now);
        }
        flushes
            .into_iter()
            .map(|f| (f.receiver, f.group_key, f.firing.len(), f.resolved.len()))
            .collect()
    }

    fn sent(
        receiver: &str,
        key: &str,
        firing: usize,
        resolved: usize,
    ) -> (String, String, usize, usize) {
        (receiver.into(), key.into(), firing, resolved)
    }

    #[test]
    fn group_wait_then_group_interval_with_dedup_repeat_and_resolution() {
        let mut d = dispatcher();
        let mut log = NotificationLog::new();
        let t0 = NOON;
        let far = t0 + 24 * 60 * MIN;
        d.insert(
            [alert(&[("alertname", "Disk"), ("instance", "a")], t0, far)],
            t0,
        );
        assert_eq!(d.next_due(), Some(t0 + 30 * S));
        assert!(tick(&mut d, &mut log, t0 + 29 * S).is_empty());
        let key = r#"{}:{alertname="Disk"}"#;
        assert_eq!(
            tick(&mut d, &mut log, t0 + 30 * S),
            [sent("mail", key, 1, 0)]
        );
        // Nothing new on the next interval: no notification.
        assert!(tick(&mut d, &mut log, t0 + 30 * S + 5 * MIN).is_empty());
        // A second alert joins the group and is sent on the following interval.
        d.insert(
            [alert(
                &[("alertname", "Disk"), ("instance", "b")],
                t0 + 6 * MIN,
                far,
            )],
            t0 + 6 * MIN,
        );
        assert_eq!(d.next_due(), Some(t0 + 30 * S + 10 * MIN));
        assert_eq!(
            tick(&mut d, &mut log, t0 + 30 * S + 10 * MIN),
            [sent("mail", key, 2, 0)]
        );
        // The repeat interval (1h) passes: sent again on the first interval tick after it (the
        // tick at exactly 1h is not after it, as Alertmanager's `Before`).
        let mut now = t0 + 30 * S + 10 * MIN;
        let mut repeats = Vec::new();
        for _ in 0..13 {
            now += 5 * MIN;
            repeats.extend(tick(&mut d, &mut log, now));
        }
        assert_eq!(repeats, [sent("mail", key, 2, 0)]);
        // One resolves: send_resolved, so a notification with one firing and one resolved.
        d.insert(
            [alert(
                &[("alertname", "Disk"), ("instance", "a")],
                t0,
                now + MIN,
            )],
            now + MIN,
        );
        now += 5 * MIN;
        assert_eq!(tick(&mut d, &mut log, now), [sent("mail", key, 1, 1)]);
        // The last resolves: sent, and the group is gone.
        d.insert(
            [alert(
                &[("alertname", "Disk"), ("instance", "b")],
                t0,
                now + MIN,
            )],
            now + MIN,
        );
        now += 5 * MIN;
        assert_eq!(tick(&mut d, &mut log, now), [sent("mail", key, 0, 1)]);
        assert_eq!(d.next_due(), None);
    }

    #[test]
    fn an_old_alert_flushes_at_once_and_silenced_ones_are_left_out() {
        let mut d = dispatcher();
        let log = NotificationLog::new();
        let t0 = NOON;
        d.insert(
            [
                alert(&[("alertname", "Old"), ("i", "1")], t0 - 10 * MIN, 0),
                alert(&[("alertname", "Old"), ("i", "2")], t0 - 10 * MIN, 0),
            ],
            t0,
        );
        assert_eq!(d.next_due(), Some(t0));
        let intervals = d.config().time_intervals.clone();
        let flushes = d.flush_due(
            t0,
            &log,
            |_| false,
            |a| a.labels.get("i") == Some("2"),
            &intervals,
        );
        assert_eq!(flushes.len(), 1);
        assert_eq!(flushes[0].firing.len(), 1);
        assert_eq!(flushes[0].firing[0].labels.get("i"), Some("1"));
        // Everything silenced: nothing to send.
        let mut d = dispatcher();
        d.insert([alert(&[("alertname", "Old")], t0 - 10 * MIN, 0)], t0);
        assert!(
            d.flush_due(t0, &log, |_| true, |_| false, &intervals)
                .is_empty()
        );
    }

    #[test]
    fn a_mute_time_interval_holds_the_notification_until_it_ends() {
        let mut d = dispatcher();
        let mut log = NotificationLog::new();
        // 03:00 UTC, inside `night`.
        let night = NOON - 9 * 60 * MIN;
        d.insert(
            [alert(
                &[("alertname", "Batch"), ("team", "night")],
                night,
                0,
            )],
            night,
        );
        assert!(tick(&mut d, &mut log, night + 30 * S).is_empty());
        // At 06:00:30 the interval is over and the group's next tick sends it.
        let mut now = night + 30 * S;
        let mut sent_at = None;
        while sent_at.is_none() && now < NOON {
            now += 5 * MIN;
            if !tick(&mut d, &mut log, now).is_empty() {
                sent_at = Some(now);
            }
        }
        assert_eq!(sent_at, Some(night + 30 * S + 36 * 5 * MIN));
    }

    #[test]
    fn dedup_follows_alertmanagers_rule() {
        let flush = |firing: &[&str], resolved: &[&str]| Flush {
            group_key: "g".into(),
            receiver: "r".into(),
            group_labels: Labels::from_pairs(Vec::<(String, String)>::new()),
            firing: firing
                .iter()
                .map(|n| alert(&[("alertname", n)], 0, 0))
                .collect(),
            resolved: resolved
                .iter()
                .map(|n| alert(&[("alertname", n)], 0, 1))
                .collect(),
            route_key: "{}".into(),
        };
        let mut log = NotificationLog::new();
        let hour = 60 * MIN;
        // Nothing sent yet: only when something fires.
        assert!(!log.needs_update(&flush(&[], &["a"]), true, hour, 0));
        assert!(log.needs_update(&flush(&["a"], &[]), true, hour, 0));
        log.record(&flush(&["a", "b"], &[]), 0);
        // A subset of what was sent, nothing resolved: only after the repeat interval.
        assert!(!log.needs_update(&flush(&["a"], &[]), false, hour, MIN));
        assert!(log.needs_update(&flush(&["a"], &[]), false, hour, hour + 1));
        // A new firing alert.
        assert!(log.needs_update(&flush(&["c"], &[]), false, hour, MIN));
        // A newly resolved alert matters only with send_resolved.
        assert!(log.needs_update(&flush(&["a"], &["b"]), true, hour, MIN));
        assert!(!log.needs_update(&flush(&["a"], &["b"]), false, hour, MIN));
        // All resolved: always sent once, so the receiver learns the group is clear.
        assert!(log.needs_update(&flush(&[], &["a", "b"]), false, hour, MIN));
        log.record(&flush(&[], &["a", "b"]), MIN);
        assert!(!log.needs_update(&flush(&[], &["a", "b"]), true, hour, 2 * MIN));
    }
}
