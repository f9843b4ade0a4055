//! The Redis collector: hit rate, memory, evictions, clients, keyspace, per-command statistics,
//! slowlog length and PING latency, under redis_exporter's names.
//!
//! Two round trips per collection on one persistent connection: `INFO ALL` with `SLOWLOG LEN`
//! pipelined, then a timed `PING`.

mod resp;

use std::collections::BTreeMap;
use std::time::Duration;

use redis::{ConnectionInfo, IntoConnectionInfo};
use tokio::time::Instant;

use self::resp::{RespConnection, RespError, Value};
use super::{CollectError, Collector, FailureKind, TargetLabels};
use crate::config::RedisTarget;
use crate::model::{Batch, MetricKind};

/// See the module documentation.
pub struct RedisCollector {
    source: String,
    labels: TargetLabels,
    info: ConnectionInfo,
    ca_pem: Option<Vec<u8>>,
    timeout: Duration,
    connection: Option<RespConnection>,
    /// `CONFIG GET databases`, read once per connection; `None` if CONFIG is not allowed.
    databases: Option<u32>,
    previous_hits: Option<(f64, f64)>,
}

impl RedisCollector {
    pub fn new(target: RedisTarget) -> Result<RedisCollector, CollectError> {
        let info = target
            .url
            .expose()
            .into_connection_info()
            .map_err(|error| {
                CollectError::Other(format!(
                    "invalid Redis target: {}",
                    error.detail().unwrap_or("unparsable")
                ))
            })?;
        Ok(RedisCollector {
            source: format!("redis:{}", target.common.server),
            labels: TargetLabels::new(&target.common),
            info,
            ca_pem: target.ca_pem.clone(),
            timeout: target.common.schedule.timeout,
            connection: None,
            databases: None,
            previous_hits: None,
        })
    }

    async fn collect_batch(&mut self) -> Result<Batch, CollectError> {
        let server = self.labels.server().to_string();
        let fail = |error: RespError| CollectError::Target {
            kind: error.kind(),
            message: format!("Redis {server}: {error}"),
        };
        // Taken out while in use: a collection dropped at its timeout drops the half-read
        // connection with it instead of reusing it.
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => {
                let connecting = RespConnection::connect(&self.info, self.ca_pem.as_deref());
                let mut connection = tokio::time::timeout(self.timeout, connecting)
                    .await
                    .map_err(|_| CollectError::Target {
                        kind: FailureKind::TimedOut,
                        message: format!("Redis {server}: no connection within {:?}", self.timeout),
                    })?
                    .map_err(&fail)?;
                // Refused when CONFIG is not allowed to the user: databases are then unknown.
                self.databases = match connection.command(&["CONFIG", "GET", "databases"]).await {
                    Ok(Value::Array(Some(pair))) => match pair.get(1) {
                        Some(Value::Bulk(Some(count))) => {
                            std::str::from_utf8(count).ok().and_then(|c| c.parse().ok())
                        }
                        _ => None,
                    },
                    Ok(_) | Err(RespError::Server(_)) => None,
                    Err(error) => return Err(fail(error)),
                };
                connection
            }
        };
        let replies = connection
            .pipeline(&[&["INFO", "ALL"], &["SLOWLOG", "LEN"]])
            .await
            .map_err(&fail)?;
        let (info, slowlog_len) = match replies.as_slice() {
            [Value::Bulk(Some(info)), Value::Integer(length)] => {
                (String::from_utf8_lossy(info).into_owned(), *length)
            }
            [info, length] => {
                return Err(fail(RespError::Protocol(format!(
                    "INFO and SLOWLOG LEN answered {} and {}",
                    resp::describe(info),
                    resp::describe(length)
                ))));
            }
            _ => return Err(fail(RespError::Protocol("missing replies".into()))),
        };
        let started = Instant::now();
        connection.command(&["PING"]).await.map_err(&fail)?;
        let ping = started.elapsed().as_secs_f64();
        self.connection = Some(connection);

        let info = parse_info(&info);
        let mut batch = Batch::new();
        let labels = &self.labels;
        batch.single_labelled(
            "redis_up",
            MetricKind::Gauge,
            "Information about the Redis instance",
            &labels.with(&[]),
            1.0,
        );
        batch.single_labelled(
            "redis_slowlog_length",
            MetricKind::Gauge,
            "Total slowlog",
            &labels.with(&[]),
            slowlog_len as f64,
        );
        batch.single_labelled(
            "prismwatch_redis_ping_seconds",
            MetricKind::Gauge,
            "Round trip of a PING to the server.",
            &labels.with(&[]),
            ping,
        );
        let text = |key: &str| info.fields.get(key).map(String::as_str).unwrap_or("");
        batch.single_labelled(
            "redis_instance_info",
            MetricKind::Gauge,
            "Information about the Redis instance",
            &labels.with(&[
                ("redis_version", text("redis_version")),
                ("redis_mode", text("redis_mode")),
                ("role", text("role")),
            ]),
            1.0,
        );
        for (field, name, kind, help) in INFO_FIELDS {
            if let Some(value) = info.number(field) {
                batch.single_labelled(name, *kind, help, &labels.with(&[]), value);
            }
        }
        if let Some(value) = info.number("maxclients") {
            batch.single_labelled(
                "redis_config_maxclients",
                MetricKind::Gauge,
                "config_maxclients metric",
                &labels.with(&[]),
                value,
            );
        }
        let (hits, misses) = (
            info.number("keyspace_hits").unwrap_or(0.0),
            info.number("keyspace_misses").unwrap_or(0.0),
        );
        let ratio = |hits: f64, misses: f64| {
            if hits + misses > 0.0 {
                hits / (hits + misses)
            } else {
                1.0
            }
        };
        batch.single_labelled(
            "prismwatch_redis_keyspace_hit_ratio_since_start",
            MetricKind::Gauge,
            "Keyspace hits over lookups since the server started (or CONFIG RESETSTAT).",
            &labels.with(&[]),
            ratio(hits, misses),
        );
        if let Some((previous_hits, previous_misses)) = self.previous_hits
            && hits >= previous_hits
            && misses >= previous_misses
        {
            batch.single_labelled(
                "prismwatch_redis_keyspace_hit_ratio",
                MetricKind::Gauge,
                "Keyspace hits over lookups in the last interval (1 when idle).",
                &labels.with(&[]),
                ratio(hits - previous_hits, misses - previous_misses),
            );
        }
        self.previous_hits = Some((hits, misses));
        if let (Some(used), Some(max)) = (info.number("used_memory"), info.number("maxmemory"))
            && max > 0.0
        {
            batch.single_labelled(
                "prismwatch_redis_memory_used_ratio",
                MetricKind::Gauge,
                "used_memory over maxmemory (absent when maxmemory is unlimited).",
                &labels.with(&[]),
                used / max,
            );
        }
        emit_keyspace(&info, self.databases, labels, &mut batch);
        emit_commands(&info, labels, &mut batch);
        Ok(batch)
    }
}

impl Collector for RedisCollector {
    fn name(&self) -> &str {
        &self.source
    }

    async fn collect(&mut self) -> Result<Batch, CollectError> {
        self.collect_batch().await
    }

    fn failure_batch(&self) -> Batch {
        let mut batch = Batch::new();
        batch.single_labelled(
            "redis_up",
            MetricKind::Gauge,
            "Information about the Redis instance",
            &self.labels.with(&[]),
            0.0,
        );
        batch
    }
}

/// INFO fields exported under redis_exporter's names.
const INFO_FIELDS: &[(&str, &str, MetricKind, &str)] = &[
    (
        "uptime_in_seconds",
        "redis_uptime_in_seconds",
        MetricKind::Gauge,
        "uptime_in_seconds metric",
    ),
    (
        "connected_clients",
        "redis_connected_clients",
        MetricKind::Gauge,
        "connected_clients metric",
    ),
    (
        "blocked_clients",
        "redis_blocked_clients",
        MetricKind::Gauge,
        "blocked_clients metric",
    ),
    (
        "connected_slaves",
        "redis_connected_slaves",
        MetricKind::Gauge,
        "connected_slaves metric",
    ),
    (
        "rejected_connections",
        "redis_rejected_connections_total",
        MetricKind::Counter,
        "rejected_connections metric",
    ),
    (
        "total_connections_received",
        "redis_connections_received_total",
        MetricKind::Counter,
        "connections_received_total metric",
    ),
    (
        "used_memory",
        "redis_memory_used_bytes",
        MetricKind::Gauge,
        "memory_used_bytes metric",
    ),
    (
        "used_memory_rss",
        "redis_memory_used_rss_bytes",
        MetricKind::Gauge,
        "memory_used_rss_bytes metric",
    ),
    (
        "used_memory_peak",
        "redis_memory_used_peak_bytes",
        MetricKind::Gauge,
        "memory_used_peak_bytes metric",
    ),
    (
        "maxmemory",
        "redis_memory_max_bytes",
        MetricKind::Gauge,
        "memory_max_bytes metric",
    ),
    (
        "total_system_memory",
        "redis_total_system_memory_bytes",
        MetricKind::Gauge,
        "total_system_memory_bytes metric",
    ),
    (
        "mem_fragmentation_ratio",
        "redis_mem_fragmentation_ratio",
        MetricKind::Gauge,
        "mem_fragmentation_ratio metric",
    ),
    (
        "keyspace_hits",
        "redis_keyspace_hits_total",
        MetricKind::Counter,
        "keyspace_hits_total metric",
    ),
    (
        "keyspace_misses",
        "redis_keyspace_misses_total",
        MetricKind::Counter,
        "keyspace_misses_total metric",
    ),
    (
        "evicted_keys",
        "redis_evicted_keys_total",
        MetricKind::Counter,
        "evicted_keys_total metric",
    ),
    (
        "expired_keys",
        "redis_expired_keys_total",
        MetricKind::Counter,
        "expired_keys_total metric",
    ),
    (
        "instantaneous_ops_per_sec",
        "redis_instantaneous_ops_per_sec",
        MetricKind::Gauge,
        "instantaneous_ops_per_sec metric",
    ),
    (
        "total_commands_processed",
        "redis_commands_processed_total",
        MetricKind::Counter,
        "commands_processed_total metric",
    ),
    (
        "rdb_last_save_time",
        "redis_rdb_last_save_timestamp_seconds",
        MetricKind::Gauge,
        "rdb_last_save_timestamp_seconds metric",
    ),
    (
        "rdb_changes_since_last_save",
        "redis_rdb_changes_since_last_save",
        MetricKind::Gauge,
        "rdb_changes_since_last_save metric",
    ),
];

/// `INFO ALL`, split into plain fields, keyspace lines and command statistics.
#[derive(Debug, Default)]
struct Info {
    fields: BTreeMap<String, String>,
    /// db index -> (keys, expires)
    keyspace: BTreeMap<u32, (f64, f64)>,
    /// command -> (calls, microseconds)
    commands: BTreeMap<String, (f64, f64)>,
}

impl Info {
    fn number(&self, key: &str) -> Option<f64> {
        self.fields.get(key)?.parse().ok()
    }
}

fn parse_info(text: &str) -> Info {
    let mut info = Info::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let pairs = || value.split(',').filter_map(|pair| pair.split_once('='));
        if let Some(db) = key.strip_prefix("db").and_then(|n| n.parse::<u32>().ok()) {
            let get = |name: &str| {
                pairs()
                    .find(|(k, _)| *k == name)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0.0)
            };
            info.keyspace.insert(db, (get("keys"), get("expires")));
        } else if let Some(command) = key.strip_prefix("cmdstat_") {
            let get = |name: &str| {
                pairs()
                    .find(|(k, _)| *k == name)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0.0)
            };
            info.commands
                .insert(command.to_string(), (get("calls"), get("usec")));
        } else {
            info.fields.insert(key.to_string(), value.to_string());
        }
    }
    info
}

fn emit_keyspace(info: &Info, databases: Option<u32>, labels: &TargetLabels, batch: &mut Batch) {
    batch.family(
        "redis_db_keys",
        MetricKind::Gauge,
        "Total number of keys by DB",
    );
    batch.family(
        "redis_db_keys_expiring",
        MetricKind::Gauge,
        "Total number of expiring keys by DB",
    );
    // Like redis_exporter, every configured database is reported, empty ones as 0.
    let mut dbs: Vec<u32> = info.keyspace.keys().copied().collect();
    if let Some(count) = databases {
        dbs.extend(0..count);
    }
    dbs.sort_unstable();
    dbs.dedup();
    for db in dbs {
        let (keys, expires) = info.keyspace.get(&db).copied().unwrap_or((0.0, 0.0));
        let name = format!("db{db}");
        batch.push("redis_db_keys", &labels.with(&[("db", &name)]), keys);
        batch.push(
            "redis_db_keys_expiring",
            &labels.with(&[("db", &name)]),
            expires,
        );
    }
}

fn emit_commands(info: &Info, labels: &TargetLabels, batch: &mut Batch) {
    batch.family(
        "redis_commands_total",
        MetricKind::Counter,
        "Total number of calls per command",
    );
    batch.family(
        "redis_commands_duration_seconds_total",
        MetricKind::Counter,
        "Total amount of time in seconds spent per command",
    );
    for (command, (calls, usec)) in &info.commands {
        batch.push(
            "redis_commands_total",
            &labels.with(&[("cmd", command)]),
            *calls,
        );
        batch.push(
            "redis_commands_duration_seconds_total",
            &labels.with(&[("cmd", command)]),
            usec / 1e6,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_sections_are_split() {
        let text = "# Server\r\nredis_version:7.0.15\r\n\r\n# Stats\r\nkeyspace_hits:10\r\n# Commandstats\r\ncmdstat_config|get:calls=2,usec=1213,usec_per_call=606.50,rejected_calls=0,failed_calls=0\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n";
        let info = parse_info(text);
        assert_eq!(info.number("keyspace_hits"), Some(10.0));
        assert_eq!(
            info.fields.get("redis_version").map(String::as_str),
            Some("7.0.15")
        );
        assert_eq!(info.keyspace.get(&0), Some(&(3.0, 1.0)));
        assert_eq!(info.commands.get("config|get"), Some(&(2.0, 1213.0)));
    }
}
