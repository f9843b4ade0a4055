//! The Redis collector: the INFO fields, keyspace, per-command statistics, slowlog and PING
//! latency, under redis_exporter's names.
//!
//! Two round trips per collection on one persistent connection: `INFO ALL`, `SLOWLOG LEN` and
//! `SLOWLOG GET 1` pipelined, then a timed `PING`. `CONFIG GET` is read once per connection.

mod info;
mod resp;

use std::collections::BTreeMap;
use std::time::Duration;

use redis::{ConnectionInfo, IntoConnectionInfo};
use tokio::time::Instant;

use self::info::{Info, parse_info};
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
    /// `CONFIG GET io-threads`, read once per connection: the server reads it only at start.
    io_threads: Option<f64>,
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
            io_threads: None,
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
                self.databases = config_number(&mut connection, "databases")
                    .await
                    .map_err(&fail)?;
                self.io_threads = config_number(&mut connection, "io-threads")
                    .await
                    .map_err(&fail)?;
                connection
            }
        };
        let replies = connection
            .pipeline(&[
                &["INFO", "ALL"],
                &["SLOWLOG", "LEN"],
                &["SLOWLOG", "GET", "1"],
            ])
            .await
            .map_err(&fail)?;
        let (info, slowlog_len, slowlog_last) = match replies.as_slice() {
            [Value::Bulk(Some(info)), Value::Integer(length), last] => (
                String::from_utf8_lossy(info).into_owned(),
                *length,
                slowlog_last(last).map_err(&fail)?,
            ),
            [info, length, _] => {
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
            "redis_slowlog_last_id",
            MetricKind::Gauge,
            "Last id of slowlog",
            &labels.with(&[]),
            slowlog_last.id,
        );
        batch.single_labelled(
            "redis_last_slow_execution_duration_seconds",
            MetricKind::Gauge,
            "The amount of time needed for last slow execution, in seconds",
            &labels.with(&[]),
            slowlog_last.duration_seconds,
        );
        if let Some(threads) = self.io_threads {
            batch.single_labelled(
                "redis_config_io_threads",
                MetricKind::Gauge,
                "config_io_threads metric",
                &labels.with(&[]),
                threads,
            );
        }
        batch.single_labelled(
            "prismwatch_redis_ping_seconds",
            MetricKind::Gauge,
            "Round trip of a PING to the server.",
            &labels.with(&[]),
            ping,
        );
        let text = |key: &str| info.fields.get(key).map(String::as_str).unwrap_or("");
        // redis_exporter's labels, each empty when the server does not report it.
        batch.single_labelled(
            "redis_instance_info",
            MetricKind::Gauge,
            "Information about the Redis instance",
            &labels.with(&[
                ("redis_version", text("redis_version")),
                ("redis_build_id", text("redis_build_id")),
                ("redis_mode", text("redis_mode")),
                ("role", text("role")),
                ("os", text("os")),
                ("maxmemory_policy", text("maxmemory_policy")),
                ("tcp_port", text("tcp_port")),
                ("run_id", text("run_id")),
                ("process_id", text("process_id")),
            ]),
            1.0,
        );
        let now_unix_seconds = crate::collector::schedule::now_ms().div_euclid(1000);
        for sample in info::info_series(&info, now_unix_seconds) {
            let help = sample.help();
            batch.single_labelled(
                sample.name,
                sample.kind,
                &help,
                &labels.with(&[]),
                sample.value,
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
        emit_errors(&info, labels, &mut batch);
        emit_replication(&info, labels, &mut batch);
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

/// One setting by `CONFIG GET`, as a number. `None` when CONFIG is refused to the user (managed
/// services rename or forbid it) or the setting is unknown to this server version.
async fn config_number<T: std::str::FromStr>(
    connection: &mut RespConnection,
    name: &str,
) -> Result<Option<T>, RespError> {
    match connection.command(&["CONFIG", "GET", name]).await {
        Ok(Value::Array(Some(pair))) => Ok(match pair.get(1) {
            Some(Value::Bulk(Some(value))) => {
                std::str::from_utf8(value).ok().and_then(|v| v.parse().ok())
            }
            _ => None,
        }),
        Ok(_) | Err(RespError::Server(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The newest slowlog entry's id and duration, both 0 when the slowlog is empty, as
/// redis_exporter reports them.
#[derive(Debug, Default, PartialEq)]
struct SlowlogLast {
    id: f64,
    duration_seconds: f64,
}

/// Reads `SLOWLOG GET 1`: an array of entries, each `[id, timestamp, microseconds, args, ...]`.
fn slowlog_last(reply: &Value) -> Result<SlowlogLast, RespError> {
    let unexpected = || {
        RespError::Protocol(format!(
            "SLOWLOG GET answered {} where entries were expected",
            resp::describe(reply)
        ))
    };
    let Value::Array(Some(entries)) = reply else {
        return Err(unexpected());
    };
    let Some(entry) = entries.first() else {
        return Ok(SlowlogLast::default());
    };
    match entry {
        Value::Array(Some(fields)) => match fields.as_slice() {
            [Value::Integer(id), _, Value::Integer(micros), ..] => Ok(SlowlogLast {
                id: *id as f64,
                duration_seconds: *micros as f64 / 1e6,
            }),
            _ => Err(unexpected()),
        },
        _ => Err(unexpected()),
    }
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
    // redis_exporter gives a mean TTL only for the databases INFO lists, in seconds.
    for (db, avg_ttl_ms) in &info.avg_ttl_ms {
        batch.single_labelled(
            "redis_db_avg_ttl_seconds",
            MetricKind::Gauge,
            "Avg TTL in seconds",
            &labels.with(&[("db", &format!("db{db}"))]),
            avg_ttl_ms / 1000.0,
        );
    }
}

/// A replica's link to its master, labelled with the master's address, and a master's
/// replicas (`slave<n>:ip=..,port=..,state=..,offset=..,lag=..`), labelled with theirs, as
/// redis_exporter. Redis lists each replica once, so the labels stay bounded.
fn emit_replication(info: &Info, labels: &TargetLabels, batch: &mut Batch) {
    let text = |key: &str| info.fields.get(key).map(String::as_str);
    let (master_host, master_port) = (
        text("master_host").unwrap_or(""),
        text("master_port").unwrap_or(""),
    );
    if text("role") == Some("slave") {
        batch.single_labelled(
            "redis_slave_info",
            MetricKind::Gauge,
            "Information about the Redis slave",
            &labels.with(&[
                ("master_host", master_host),
                ("master_port", master_port),
                ("read_only", text("slave_read_only").unwrap_or("")),
            ]),
            1.0,
        );
    }
    if let Some(status) = text("master_link_status") {
        let master = labels.with(&[("master_host", master_host), ("master_port", master_port)]);
        batch.single_labelled(
            "redis_master_link_up",
            MetricKind::Gauge,
            "Master link status on Redis slave",
            &master,
            if status == "up" { 1.0 } else { 0.0 },
        );
        for (field, name, help) in [
            (
                "master_last_io_seconds_ago",
                "redis_master_last_io_seconds_ago",
                "Master last io seconds ago",
            ),
            (
                "master_sync_in_progress",
                "redis_master_sync_in_progress",
                "Master sync in progress",
            ),
            (
                "slave_repl_offset",
                "redis_slave_repl_offset",
                "Slave replication offset",
            ),
        ] {
            // redis_exporter reads these as integers and reports 0 for anything else.
            if let Some(raw) = text(field) {
                let value = raw.parse::<i64>().map_or(0.0, |v| v as f64);
                batch.single_labelled(name, MetricKind::Gauge, help, &master, value);
            }
        }
    }
    for (key, value) in &info.fields {
        if let Some(replica) = connected_replica(key, value) {
            let replica_labels = labels.with(&[
                ("slave_ip", replica.ip),
                ("slave_port", replica.port),
                ("slave_state", replica.state),
            ]);
            batch.single_labelled(
                "redis_connected_slave_offset_bytes",
                MetricKind::Gauge,
                "Offset of connected slave",
                &replica_labels,
                replica.offset,
            );
            if let Some(lag) = replica.lag {
                batch.single_labelled(
                    "redis_connected_slave_lag_seconds",
                    MetricKind::Gauge,
                    "Lag of connected slave",
                    &replica_labels,
                    lag,
                );
            }
        }
    }
}

/// One `slave<n>` line of a master's INFO replication section.
#[derive(Debug, PartialEq)]
struct ConnectedReplica<'a> {
    ip: &'a str,
    port: &'a str,
    state: &'a str,
    offset: f64,
    /// Absent before Redis 3.0.
    lag: Option<f64>,
}

/// Parses a `slave<n>` field; `None` for any other field or a malformed line.
fn connected_replica<'a>(key: &str, value: &'a str) -> Option<ConnectedReplica<'a>> {
    let index = key.strip_prefix("slave")?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut pairs = BTreeMap::new();
    for pair in value.split(',') {
        let (name, text) = pair.split_once('=')?;
        pairs.insert(name, text);
    }
    let lag = match pairs.get("lag") {
        Some(lag) => Some(lag.parse().ok()?),
        None => None,
    };
    Some(ConnectedReplica {
        ip: pairs.get("ip").copied().unwrap_or(""),
        port: pairs.get("port").copied().unwrap_or(""),
        state: pairs.get("state").copied().unwrap_or(""),
        offset: pairs.get("offset")?.parse().ok()?,
        lag,
    })
}

/// Error replies by their first word, as redis_exporter's `redis_errors_total`.
fn emit_errors(info: &Info, labels: &TargetLabels, batch: &mut Batch) {
    for (error, count) in &info.errors {
        batch.single_labelled(
            "redis_errors_total",
            MetricKind::Counter,
            "Total number of errors per error type",
            &labels.with(&[("err", error)]),
            *count,
        );
    }
}

/// Per-command calls and time; failed and rejected calls where the server counts them (Redis
/// 6.2 and later), as redis_exporter.
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
    for (command, stats) in &info.commands {
        let cmd = labels.with(&[("cmd", command)]);
        batch.push("redis_commands_total", &cmd, stats.calls);
        batch.push(
            "redis_commands_duration_seconds_total",
            &cmd,
            stats.usec / 1e6,
        );
        if let Some(rejected) = stats.rejected_calls {
            batch.single_labelled(
                "redis_commands_rejected_calls_total",
                MetricKind::Counter,
                "Total number of calls per command refused before they ran",
                &cmd,
                rejected,
            );
        }
        if let Some(failed) = stats.failed_calls {
            batch.single_labelled(
                "redis_commands_failed_calls_total",
                MetricKind::Counter,
                "Total number of calls per command that ran and failed",
                &cmd,
                failed,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, micros: i64) -> Value {
        Value::Array(Some(vec![
            Value::Integer(id),
            Value::Integer(1_796_228_943),
            Value::Integer(micros),
            Value::Array(Some(vec![Value::Bulk(Some(b"DEBUG".to_vec()))])),
        ]))
    }

    #[test]
    fn replica_lines_are_parsed() {
        assert_eq!(
            connected_replica(
                "slave0",
                "ip=127.0.0.1,port=6380,state=online,offset=1234,lag=1"
            ),
            Some(ConnectedReplica {
                ip: "127.0.0.1",
                port: "6380",
                state: "online",
                offset: 1234.0,
                lag: Some(1.0),
            })
        );
        assert_eq!(
            connected_replica("slave1", "ip=10.0.0.2,port=6379,state=wait_bgsave,offset=0")
                .map(|r| r.lag),
            Some(None)
        );
        for (key, value) in [
            ("slave_repl_offset", "1234"),
            ("slave0", "ip=127.0.0.1,port=6380,state=online"),
            ("slave0", "garbage"),
        ] {
            assert_eq!(connected_replica(key, value), None, "{key}:{value}");
        }
    }

    #[test]
    fn the_newest_slowlog_entry_gives_id_and_duration() {
        let reply = Value::Array(Some(vec![entry(7, 12_500)]));
        assert_eq!(
            slowlog_last(&reply).ok(),
            Some(SlowlogLast {
                id: 7.0,
                duration_seconds: 0.0125,
            })
        );
    }

    #[test]
    fn an_empty_slowlog_gives_zeros() {
        assert_eq!(
            slowlog_last(&Value::Array(Some(Vec::new()))).ok(),
            Some(SlowlogLast::default())
        );
    }

    #[test]
    fn a_slowlog_reply_of_another_shape_is_a_protocol_error() {
        for reply in [
            Value::Bulk(Some(b"x".to_vec())),
            Value::Array(Some(vec![Value::Integer(1)])),
            Value::Array(Some(vec![Value::Array(Some(vec![Value::Integer(1)]))])),
        ] {
            assert!(matches!(slowlog_last(&reply), Err(RespError::Protocol(_))));
        }
    }
}
