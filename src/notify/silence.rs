//! Silences: a set of matchers and a time window, as Alertmanager's silences.

use crate::model::Labels;
use crate::notify::matcher::{self, Matcher};

/// Where a silence is in its life, as Alertmanager's `CalcSilenceState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// One silence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub created_by: String,
    pub comment: String,
    pub updated_at_ms: i64,
}

impl Silence {
    /// Pending before its start, active until its end, expired from its end on.
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else if now_ms < self.ends_at_ms {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// True when every matcher matches the labels (whatever the state).
    pub fn matches(&self, labels: &Labels) -> bool {
        matcher::matches_all(&self.matchers, labels)
    }

    /// True when the silence is active at `now_ms` and matches the labels.
    pub fn silences(&self, labels: &Labels, now_ms: i64) -> bool {
        self.state(now_ms) == SilenceState::Active && self.matches(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::matcher::parse_matchers;

    #[test]
    fn state_follows_the_window_and_matching_needs_every_matcher() {
        let silence = Silence {
            id: "1".into(),
            matchers: parse_matchers(r#"{alertname="Disk", instance=~"db.*"}"#).expect("matchers"),
            starts_at_ms: 1_000,
            ends_at_ms: 2_000,
            created_by: "ops".into(),
            comment: "maintenance".into(),
            updated_at_ms: 0,
        };
        let states: Vec<_> = [999, 1_000, 1_999, 2_000]
            .map(|t| silence.state(t))
            .to_vec();
        assert_eq!(
            states,
            [
                SilenceState::Pending,
                SilenceState::Active,
                SilenceState::Active,
                SilenceState::Expired
            ]
        );
        let db = Labels::from_pairs([("alertname", "Disk"), ("instance", "db1")]);
        let web = Labels::from_pairs([("alertname", "Disk"), ("instance", "web1")]);
        assert!(silence.silences(&db, 1_500));
        assert!(!silence.silences(&db, 2_500));
        assert!(!silence.silences(&web, 1_500));
    }
}
