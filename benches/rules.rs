//! Rule evaluation at scale: 1,000 rules in 50 groups over 10,000 series holding one hour of
//! history, scraped every 15 s. Prints the evaluation time per round, per rule and per rule
//! shape, and the memory used; `cargo bench --bench rules`.
//!
//! The series imitate 100 hosts running node_exporter, postgres_exporter and redis_exporter
//! (100 series per host: counters growing by noisy amounts, gauges on random walks), in ten
//! clusters. The rules are generated from the shapes of community alerting and recording rules
//! (`tests/compat/*.yml`, `rules/*.yml`); every rule differs from the others in its cluster,
//! window, matchers or threshold, so no two rules do the same work.
//!
//! Each round writes one more scrape (not timed, as the scheduler would) and then evaluates every
//! group at the scrape's timestamp, as the daemon does on each 15 s tick.
//!
//! Flags (after `--`): `--rounds N` (default 20); `--result FILE` writes the figures as JSON;
//! `--dump DIR` writes, instead of measuring, the same rules and samples for Prometheus:
//! `DIR/rules.yml`, `DIR/shapes.txt` (each rule's shape, in file order), `DIR/series.om` (the
//! first hour as OpenMetrics, for `promtool tsdb create-blocks-from openmetrics`) and
//! `DIR/live/N.prom` (the next 20 minutes, one exposition per scrape with timestamps, for a
//! scrape target); `--end-ms MS` sets the timestamp of the last sample of the first hour, which
//! `benches/rules_vs_prometheus.py` sets to the wall clock.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use prismwatch::history::{History, HistoryLimits};
use prismwatch::model::{Batch, MetricKind};
use prismwatch::rules::engine::{Context, GroupState, evaluate_group};
use prismwatch::rules::{self, Group, RuleKind};

const HOSTS: usize = 100;
const CLUSTERS: usize = 10;
const SCRAPE_MS: i64 = 15_000;
/// Scrapes in the first hour: the history the first round evaluates over.
const HOUR_STEPS: usize = 240;
const GROUPS: usize = 50;
const RULES_PER_GROUP: usize = 20;
/// Scrapes written after the first hour by `--dump` for a scrape target, so Prometheus, which
/// evaluates at the wall clock, finds a full hour and a fresh scrape for 20 minutes.
const DUMP_EXTRA_STEPS: usize = 80;
const DEFAULT_END_MS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % SCRAPE_MS;

fn main() {
    let options = Options::parse();
    let baseline = ProcessMemory::read();
    let specs = series_specs(options.end_ms);
    assert_eq!(specs.len(), HOSTS * 100, "the mix must hold 10,000 series");
    let (rule_text, shapes) = rule_file();
    let groups = rules::load_text(Path::new("bench-rules.yml"), &rule_text).unwrap_or_else(|e| {
        panic!(
            "the generated rules must load: {}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let rule_count: usize = groups.iter().map(|g| g.rules.len()).sum();
    assert_eq!(rule_count, GROUPS * RULES_PER_GROUP);
    let start_ms = options.end_ms - (HOUR_STEPS as i64 - 1) * SCRAPE_MS;
    if let Some(dir) = &options.dump {
        dump(dir, &rule_text, &shapes, &specs, start_ms);
        return;
    }

    // The history, built one scrape at a time as the scheduler writes it.
    let mut generators: Vec<Generator> = specs.iter().map(Generator::new).collect();
    let sources = Sources::new(&specs);
    let mut history = History::new(HistoryLimits {
        retention_ms: 3_600_000,
        max_series: 100_000,
    });
    let started = Instant::now();
    for step in 0..HOUR_STEPS {
        scrape(
            &mut history,
            &specs,
            &sources,
            &mut generators,
            start_ms + step as i64 * SCRAPE_MS,
        );
    }
    let build_time = started.elapsed();
    let built_stats = history.stats();
    let built_memory = ProcessMemory::read();
    let store = RwLock::new(history);

    // Rounds: one scrape (untimed), then every group at the scrape's timestamp (timed).
    let context = Context::default();
    let mut states: Vec<GroupState> = groups.iter().map(|_| GroupState::default()).collect();
    let mut rounds = Vec::new();
    let mut step = HOUR_STEPS - 1;
    for round in 0..options.rounds {
        if round > 0 {
            step += 1;
            scrape_store(&store, &specs, &sources, &mut generators, start_ms, step);
        }
        let ts = start_ms + step as i64 * SCRAPE_MS;
        let started = Instant::now();
        let mut written = Written::default();
        for (group, state) in groups.iter().zip(states.iter_mut()) {
            let outcomes = evaluate_group(&store, group, ts, state, &context);
            written.add(group, &outcomes);
        }
        rounds.push(started.elapsed());
        if round == 0 || round + 1 == options.rounds {
            println!(
                "round {}: {:.1} ms, wrote {} ALERTS samples from {} alerting rules and {} series from {} recording rules",
                round + 1,
                ms(*rounds.last().unwrap()),
                written.alert_samples,
                written.alert_rules_with_output,
                written.record_samples,
                written.record_rules_with_output,
            );
        }
    }
    let evaluated_memory = ProcessMemory::read();
    let evaluated_stats = store.read().unwrap().stats();

    // One more round, rule by rule, to attribute the time to the rule shapes. Each rule runs as
    // a group of one under its group's name, so it reads and writes what it would in its group.
    step += 1;
    scrape_store(&store, &specs, &sources, &mut generators, start_ms, step);
    let ts = start_ms + step as i64 * SCRAPE_MS;
    let mut by_shape: BTreeMap<&str, (Duration, usize, String)> = BTreeMap::new();
    let mut profiled = Duration::ZERO;
    for (group, state) in groups.iter().zip(states.iter_mut()) {
        for (index, rule) in group.rules.iter().enumerate() {
            let single = Group {
                rules: vec![rule.clone()],
                ..group.clone()
            };
            let key = rule.key.clone();
            let mut single_state = GroupState::default();
            if let Some(alerts) = state.rules.remove(&key) {
                single_state.rules.insert(key.clone(), alerts);
            }
            let started = Instant::now();
            let outcomes = evaluate_group(&store, &single, ts, &mut single_state, &context);
            let took = started.elapsed();
            check(&single, &outcomes);
            state.rules.append(&mut single_state.rules);
            profiled += took;
            let shape = shapes[group_index(group) * RULES_PER_GROUP + index];
            let entry = by_shape
                .entry(shape)
                .or_insert_with(|| (Duration::ZERO, 0, rule.expr.trim().replace('\n', " ")));
            entry.0 += took;
            entry.1 += 1;
        }
    }
    let state_bytes = serde_json::to_vec(&states).unwrap().len();
    let alerts_held = serde_json::to_value(&states)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["rules"]
                .as_object()
                .map_or(0, |r| r.values().map(count_alerts).sum::<usize>())
        })
        .sum::<usize>();

    // The summary.
    let mut sorted = rounds.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    let per_rule_us = median.as_secs_f64() * 1e6 / rule_count as f64;
    let mut shapes_sorted: Vec<_> = by_shape.iter().collect();
    shapes_sorted.sort_by(|a, b| {
        let mean = |e: &(Duration, usize, String)| e.0.as_secs_f64() / e.1 as f64;
        mean(b.1).total_cmp(&mean(a.1))
    });
    println!();
    println!("== rules benchmark ==");
    println!(
        "workload: {rule_count} rules in {} groups ({} shapes), {} series ({} hosts x 100), 1 h of history at {} s, {} samples",
        groups.len(),
        by_shape.len(),
        built_stats.series,
        HOSTS,
        SCRAPE_MS / 1000,
        built_stats.samples
    );
    println!(
        "build: {:.2} s to ingest {HOUR_STEPS} scrapes ({:.2} M samples/s)",
        build_time.as_secs_f64(),
        built_stats.samples as f64 / build_time.as_secs_f64() / 1e6
    );
    println!(
        "evaluation, all groups, {} rounds: median {:.1} ms, min {:.1} ms, max {:.1} ms; rounds: {}",
        rounds.len(),
        ms(median),
        ms(min),
        ms(max),
        rounds
            .iter()
            .map(|d| format!("{:.1}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "per rule: {per_rule_us:.1} us mean; {:.0} rules/s on one core; one round is {:.2}% of a 15 s interval",
        rule_count as f64 / median.as_secs_f64(),
        median.as_secs_f64() / 15.0 * 100.0
    );
    println!(
        "rule by rule (one more round): {:.1} ms in all; slowest shapes by mean time per rule:",
        ms(profiled)
    );
    for (shape, (total, count, example)) in shapes_sorted.iter().take(5) {
        println!(
            "  {:8.1} us x {count:3}  {shape}: {}",
            total.as_secs_f64() * 1e6 / *count as f64,
            shorten(example, 110)
        );
    }
    println!(
        "memory: history {:.1} MiB after the hour ({:.2} bytes/sample in chunks), {:.1} MiB after evaluation ({} series with rule outputs)",
        mib(built_stats.total_bytes),
        built_stats.bytes_per_sample(),
        mib(evaluated_stats.total_bytes),
        evaluated_stats.series
    );
    println!(
        "memory: process RSS {:.1} MiB at start, {:.1} MiB with the history, {:.1} MiB after evaluation (peak {:.1} MiB)",
        mib(baseline.rss),
        mib(built_memory.rss),
        mib(evaluated_memory.rss),
        mib(evaluated_memory.hwm)
    );
    println!(
        "memory: alert state {:.1} KiB as JSON, {alerts_held} alerts pending or firing",
        state_bytes as f64 / 1024.0
    );
    if let Some(file) = &options.result {
        let shape_us: BTreeMap<&str, f64> = by_shape
            .iter()
            .map(|(shape, (total, count, _))| (*shape, total.as_secs_f64() * 1e6 / *count as f64))
            .collect();
        let result = serde_json::json!({
            "rules": rule_count,
            "series": built_stats.series,
            "rounds_ms": rounds.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "round_median_ms": ms(median),
            "per_rule_us": per_rule_us,
            "shape_us": shape_us,
            "history_bytes": evaluated_stats.total_bytes,
            "rss_bytes": evaluated_memory.rss,
            "end_ms": options.end_ms,
        });
        std::fs::write(file, result.to_string()).unwrap();
    }
}

struct Options {
    rounds: usize,
    dump: Option<PathBuf>,
    result: Option<PathBuf>,
    end_ms: i64,
}

impl Options {
    /// Reads the flags; cargo passes `--bench` too, which is ignored.
    fn parse() -> Options {
        let mut options = Options {
            rounds: 20,
            dump: None,
            result: None,
            end_ms: DEFAULT_END_MS,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--rounds" => options.rounds = args.next().and_then(|v| v.parse().ok()).unwrap(),
                "--dump" => options.dump = args.next().map(PathBuf::from),
                "--result" => options.result = args.next().map(PathBuf::from),
                "--end-ms" => {
                    let end: i64 = args.next().and_then(|v| v.parse().ok()).unwrap();
                    options.end_ms = end - end.rem_euclid(SCRAPE_MS);
                }
                _ => {}
            }
        }
        assert!(options.rounds > 0, "--rounds must be positive");
        options
    }
}

// ---------------------------------------------------------------------------------------------
// The series.

/// How a series' value moves from one scrape to the next.
#[derive(Clone, Copy, Debug)]
enum Model {
    /// Grows by `per_second` times the interval, give or take `jitter` of it, in steps of
    /// `quantum`.
    Counter {
        per_second: f64,
        jitter: f64,
        quantum: f64,
    },
    /// Grows by `amount` in one scrape out of `1 / chance`.
    Sparse {
        chance: f64,
        amount: f64,
    },
    /// A random walk of `sd` per scrape with `drift` per scrape, held within `[low, high]`.
    Walk {
        sd: f64,
        drift: f64,
        low: f64,
        high: f64,
        quantum: f64,
    },
    Constant,
}

struct Spec {
    family: &'static str,
    kind: MetricKind,
    labels: Vec<(&'static str, String)>,
    /// The exporter (host and job) the series belongs to; one batch per source per scrape.
    source: usize,
    model: Model,
    initial: f64,
    seed: u64,
}

/// xorshift64*: deterministic and fast; the bench needs noise, not quality.
#[derive(Clone, Copy)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }
}

/// A series' value over time; a function of its spec only, so the series can be generated in
/// any order (scrape by scrape for the history, series by series for the dump).
struct Generator {
    model: Model,
    value: f64,
    rng: Rng,
}

impl Generator {
    fn new(spec: &Spec) -> Generator {
        Generator {
            model: spec.model,
            value: spec.initial,
            rng: Rng::new(spec.seed),
        }
    }

    fn step(&mut self) -> f64 {
        let interval = SCRAPE_MS as f64 / 1000.0;
        match self.model {
            Model::Counter {
                per_second,
                jitter,
                quantum,
            } => {
                let factor = 1.0 + jitter * (2.0 * self.rng.unit() - 1.0);
                let next = self.value + per_second * interval * factor.max(0.0);
                self.value = (next / quantum).round() * quantum;
            }
            Model::Sparse { chance, amount } => {
                if self.rng.unit() < chance {
                    self.value += amount;
                }
            }
            Model::Walk {
                sd,
                drift,
                low,
                high,
                quantum,
            } => {
                // The sum of three uniforms is close enough to a normal step.
                let noise = (self.rng.unit() + self.rng.unit() + self.rng.unit() - 1.5) * 2.0;
                let next = (self.value + drift + sd * noise).clamp(low, high);
                self.value = (next / quantum).round() * quantum;
            }
            Model::Constant => {}
        }
        self.value
    }
}

/// 100 hosts in 10 clusters, each with node (65 series), postgres (23) and redis (12) exporters.
fn series_specs(end_ms: i64) -> Vec<Spec> {
    let mut specs = Vec::new();
    let mut rng = Rng::new(42);
    for host in 0..HOSTS {
        let cluster = format!("c{}", host / (HOSTS / CLUSTERS));
        let busy = rng.between(0.05, 0.95);
        for (exporter, (job, port)) in [("node", 9100), ("postgres", 9187), ("redis", 9121)]
            .into_iter()
            .enumerate()
        {
            let source = host * 3 + exporter;
            let instance = format!("host-{host:02}:{port}");
            let mut add = |family: &'static str,
                           kind: MetricKind,
                           extra: &[(&'static str, &str)],
                           model: Model,
                           initial: f64| {
                let mut labels = vec![
                    ("cluster", cluster.clone()),
                    ("instance", instance.clone()),
                    ("job", job.to_string()),
                ];
                labels.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
                labels.sort();
                let seed = specs.len() as u64 + 1;
                specs.push(Spec {
                    family,
                    kind,
                    labels,
                    source,
                    model,
                    initial,
                    seed,
                });
            };
            let counter = |per_second: f64, quantum: f64| Model::Counter {
                per_second,
                jitter: 0.5,
                quantum,
            };
            let gauge = |sd: f64, low: f64, high: f64| Model::Walk {
                sd,
                drift: 0.0,
                low,
                high,
                quantum: 1.0,
            };
            let uptime = rng.between(1e5, 1e7);
            match job {
                "node" => {
                    for cpu in ["0", "1", "2", "3"] {
                        for (mode, share) in [
                            ("idle", 1.0 - busy),
                            ("iowait", busy * 0.05),
                            ("irq", 0.002),
                            ("nice", 0.001),
                            ("softirq", busy * 0.02),
                            ("steal", if host % 7 == 0 { 0.05 } else { 0.0005 }),
                            ("system", busy * 0.25),
                            ("user", busy * 0.68),
                        ] {
                            add(
                                "node_cpu_seconds_total",
                                MetricKind::Counter,
                                &[("cpu", cpu), ("mode", mode)],
                                counter(share, 0.01),
                                (share * uptime * 100.0).round() / 100.0,
                            );
                        }
                    }
                    let total = [8.0, 16.0, 32.0, 64.0][host % 4] * 1_073_741_824.0;
                    add(
                        "node_memory_MemTotal_bytes",
                        MetricKind::Gauge,
                        &[],
                        Model::Constant,
                        total,
                    );
                    add(
                        "node_memory_MemAvailable_bytes",
                        MetricKind::Gauge,
                        &[],
                        gauge(total * 0.002, total * 0.02, total * 0.9),
                        total * rng.between(0.05, 0.7),
                    );
                    add(
                        "node_load1",
                        MetricKind::Gauge,
                        &[],
                        Model::Walk {
                            sd: 0.3,
                            drift: 0.0,
                            low: 0.0,
                            high: 16.0,
                            quantum: 0.01,
                        },
                        busy * 4.0,
                    );
                    add(
                        "node_context_switches_total",
                        MetricKind::Counter,
                        &[],
                        counter(2_000.0 + busy * 40_000.0, 1.0),
                        uptime * 10_000.0,
                    );
                    for (device, fstype, mountpoint, size) in [
                        ("/dev/sda1", "ext4", "/", 50.0),
                        ("/dev/sdb1", "xfs", "/var", 500.0),
                        ("tmpfs", "tmpfs", "/run", 2.0),
                    ] {
                        let size = size * 1_073_741_824.0;
                        let labels = [
                            ("device", device),
                            ("fstype", fstype),
                            ("mountpoint", mountpoint),
                        ];
                        add(
                            "node_filesystem_size_bytes",
                            MetricKind::Gauge,
                            &labels,
                            Model::Constant,
                            size,
                        );
                        // Some filesystems fill up steadily, as logs and WAL do.
                        let drift = if host % 5 == 0 { -size * 0.0002 } else { 0.0 };
                        add(
                            "node_filesystem_avail_bytes",
                            MetricKind::Gauge,
                            &labels,
                            Model::Walk {
                                sd: size * 0.0005,
                                drift,
                                low: 0.0,
                                high: size,
                                quantum: 4096.0,
                            },
                            size * rng.between(0.1, 0.8),
                        );
                        add(
                            "node_filesystem_readonly",
                            MetricKind::Gauge,
                            &labels,
                            Model::Constant,
                            0.0,
                        );
                    }
                    for (device, speed) in [("eth0", 125_000_000.0), ("lo", 0.0)] {
                        let traffic = if device == "lo" { 1e5 } else { busy * 8e7 };
                        let labels = [("device", device)];
                        add(
                            "node_network_receive_bytes_total",
                            MetricKind::Counter,
                            &labels,
                            counter(traffic, 1.0),
                            traffic * uptime,
                        );
                        add(
                            "node_network_transmit_bytes_total",
                            MetricKind::Counter,
                            &labels,
                            counter(traffic * 0.6, 1.0),
                            traffic * 0.6 * uptime,
                        );
                        add(
                            "node_network_receive_packets_total",
                            MetricKind::Counter,
                            &labels,
                            counter(traffic / 900.0, 1.0),
                            (traffic / 900.0 * uptime).round(),
                        );
                        add(
                            "node_network_receive_errs_total",
                            MetricKind::Counter,
                            &labels,
                            Model::Sparse {
                                chance: 0.05,
                                amount: 3.0,
                            },
                            0.0,
                        );
                        add(
                            "node_network_speed_bytes",
                            MetricKind::Gauge,
                            &labels,
                            Model::Constant,
                            speed,
                        );
                    }
                    for device in ["sda", "sdb"] {
                        let labels = [("device", device)];
                        let ops = busy * 300.0;
                        for (family, per_second, quantum) in [
                            ("node_disk_io_time_seconds_total", busy * 0.6, 0.001),
                            ("node_disk_read_time_seconds_total", ops * 0.002, 0.001),
                            ("node_disk_reads_completed_total", ops, 1.0),
                            ("node_disk_write_time_seconds_total", ops * 0.004, 0.001),
                            ("node_disk_writes_completed_total", ops * 1.5, 1.0),
                        ] {
                            add(
                                family,
                                MetricKind::Counter,
                                &labels,
                                counter(per_second, quantum),
                                (per_second * uptime / quantum).round() * quantum,
                            );
                        }
                    }
                }
                "postgres" => {
                    add("pg_up", MetricKind::Gauge, &[], Model::Constant, 1.0);
                    add(
                        "pg_settings_max_connections",
                        MetricKind::Gauge,
                        &[],
                        Model::Constant,
                        [100.0, 200.0, 500.0][host % 3],
                    );
                    for (datname, weight) in [("app", 1.0), ("analytics", 0.2), ("postgres", 0.01)]
                    {
                        let labels = [("datname", datname)];
                        let tps = busy * 500.0 * weight;
                        for (family, model) in [
                            ("pg_stat_database_xact_commit", counter(tps, 1.0)),
                            ("pg_stat_database_xact_rollback", counter(tps * 0.01, 1.0)),
                            (
                                "pg_stat_database_deadlocks",
                                Model::Sparse {
                                    chance: 0.01,
                                    amount: 1.0,
                                },
                            ),
                            ("pg_stat_database_blks_hit", counter(tps * 40.0, 1.0)),
                            ("pg_stat_database_blks_read", counter(tps * 1.5, 1.0)),
                        ] {
                            let initial = match model {
                                Model::Sparse { .. } => (uptime / 1e4).round(),
                                _ => (tps * uptime).round(),
                            };
                            add(family, MetricKind::Counter, &labels, model, initial);
                        }
                        for (state, share) in [("active", 0.2), ("idle", 0.8)] {
                            add(
                                "pg_stat_activity_count",
                                MetricKind::Gauge,
                                &[("datname", datname), ("state", state)],
                                gauge(2.0, 0.0, 400.0),
                                (busy * 100.0 * weight * share).round(),
                            );
                        }
                    }
                }
                _ => {
                    let max = [1.0, 4.0, 16.0][host % 3] * 1_073_741_824.0;
                    add("redis_up", MetricKind::Gauge, &[], Model::Constant, 1.0);
                    add(
                        "redis_memory_max_bytes",
                        MetricKind::Gauge,
                        &[],
                        Model::Constant,
                        max,
                    );
                    add(
                        "redis_memory_used_bytes",
                        MetricKind::Gauge,
                        &[],
                        Model::Walk {
                            sd: max * 0.002,
                            drift: max * 0.0001,
                            low: 0.0,
                            high: max,
                            quantum: 8.0,
                        },
                        max * rng.between(0.2, 0.95),
                    );
                    add(
                        "redis_config_maxclients",
                        MetricKind::Gauge,
                        &[],
                        Model::Constant,
                        10_000.0,
                    );
                    add(
                        "redis_connected_clients",
                        MetricKind::Gauge,
                        &[],
                        gauge(5.0, 1.0, 10_000.0),
                        (busy * 9_000.0).round(),
                    );
                    add(
                        "redis_connected_slaves",
                        MetricKind::Gauge,
                        &[],
                        Model::Constant,
                        (host % 3) as f64,
                    );
                    add(
                        "redis_db_keys",
                        MetricKind::Gauge,
                        &[("db", "db0")],
                        gauge(50.0, 0.0, 1e9),
                        (busy * 1e6).round(),
                    );
                    add(
                        "redis_rdb_last_save_timestamp_seconds",
                        MetricKind::Gauge,
                        &[],
                        Model::Constant,
                        ((end_ms / 1000) as f64 - rng.between(60.0, 1e5)).round(),
                    );
                    let ops = busy * 20_000.0;
                    for (family, model) in [
                        ("redis_commands_processed_total", counter(ops, 1.0)),
                        ("redis_keyspace_hits_total", counter(ops * 0.6, 1.0)),
                        ("redis_keyspace_misses_total", counter(ops * 0.05, 1.0)),
                        (
                            "redis_rejected_connections_total",
                            Model::Sparse {
                                chance: 0.02,
                                amount: 7.0,
                            },
                        ),
                    ] {
                        let initial = match model {
                            Model::Sparse { .. } => (uptime / 1e3).round(),
                            _ => (ops * uptime).round(),
                        };
                        add(family, MetricKind::Counter, &[], model, initial);
                    }
                }
            }
        }
    }
    specs
}

/// One exporter: its name as a history source, its specs (contiguous in `series_specs`) and the
/// families it declares.
struct Source {
    name: String,
    specs: std::ops::Range<usize>,
    families: Vec<(&'static str, MetricKind)>,
}

/// Every source, in spec order.
struct Sources(Vec<Source>);

impl Sources {
    fn new(specs: &[Spec]) -> Sources {
        let mut sources: Vec<Source> = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            match sources.last_mut() {
                Some(source) if specs[source.specs.start].source == spec.source => {
                    source.specs.end = index + 1;
                    if !source.families.iter().any(|(f, _)| *f == spec.family) {
                        source.families.push((spec.family, spec.kind));
                    }
                }
                _ => sources.push(Source {
                    name: format!("exporter-{}", spec.source),
                    specs: index..index + 1,
                    families: vec![(spec.family, spec.kind)],
                }),
            }
        }
        Sources(sources)
    }
}

/// Writes one scrape of every source at `ts`, a complete batch per source.
fn scrape(
    history: &mut History,
    specs: &[Spec],
    sources: &Sources,
    generators: &mut [Generator],
    ts: i64,
) {
    for source in &sources.0 {
        let mut batch = Batch::new();
        for (family, kind) in &source.families {
            batch.family(family, *kind, "Generated by the rules benchmark.");
        }
        for index in source.specs.clone() {
            let spec = &specs[index];
            let labels: Vec<(&str, &str)> =
                spec.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            batch.push(spec.family, &labels, generators[index].step());
        }
        history.ingest(&source.name, ts, batch);
    }
}

/// One scrape into the shared store, then the retention trim of a maintenance tick.
fn scrape_store(
    store: &RwLock<History>,
    specs: &[Spec],
    sources: &Sources,
    generators: &mut [Generator],
    start_ms: i64,
    step: usize,
) {
    let ts = start_ms + step as i64 * SCRAPE_MS;
    let mut history = store.write().unwrap();
    scrape(&mut history, specs, sources, generators, ts);
    history.trim(ts);
}

// ---------------------------------------------------------------------------------------------
// The rules.

/// One generated rule: its shape's name, and its text in the rule file.
struct RuleText {
    shape: &'static str,
    alert: bool,
    name: String,
    expr: String,
}

/// The shapes, each a function of the variant `v` (0..42) giving a distinct rule. `c` is the
/// cluster, `w` a rate window, `for_` the hold of an alert.
fn rule_of(template: usize, v: usize) -> RuleText {
    let c = v % CLUSTERS;
    let w = ["1m", "2m", "5m"][(v / CLUSTERS) % 3];
    let long = ["10m", "30m", "1h"][(v / CLUSTERS) % 3];
    let cl = format!("cluster=\"c{c}\"");
    let f = |x: f64| {
        format!("{x:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    let (shape, alert, name, expr) = match template {
        0 => (
            "cpu busy: avg by (instance) of rate",
            true,
            "HostCpuBusy",
            format!(
                "100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{{mode=\"idle\",{cl}}}[{w}]))) > {}",
                f(85.0 + v as f64 * 0.25)
            ),
        ),
        1 => (
            "cpu iowait/steal: avg without (cpu), regex matchers",
            true,
            "HostCpuWaiting",
            format!(
                "avg without (cpu) (rate(node_cpu_seconds_total{{mode=~\"iowait|steal\",instance=~\"host-{c}[0-9]:9100\"}}[{w}])) > {}",
                f(0.06 + v as f64 * 0.001)
            ),
        ),
        2 => (
            "cpu record: sum by (instance, mode) of irate",
            false,
            "instance_mode:node_cpu_seconds:irate",
            format!(
                "sum by (instance, mode) (irate(node_cpu_seconds_total{{mode!=\"idle\",{cl}}}[{}])) * {}",
                ["1m", "2m"][(v / CLUSTERS) % 2],
                1 + v / 20
            ),
        ),
        3 => (
            "memory available ratio",
            true,
            "HostMemoryLow",
            format!(
                "node_memory_MemAvailable_bytes{{{cl}}} / node_memory_MemTotal_bytes < {}",
                f(0.05 + v as f64 * 0.001)
            ),
        ),
        4 => (
            "load per cpu: on (instance) count by (instance)",
            true,
            "HostLoadHigh",
            format!(
                "node_load1{{{cl}}} / on (instance) count by (instance) (node_cpu_seconds_total{{mode=\"idle\",{cl}}}) > {}",
                f(1.0 + v as f64 * 0.05)
            ),
        ),
        5 => (
            "disk will fill: predict_linear over 1h and ratios",
            true,
            "HostDiskWillFill",
            format!(
                "predict_linear(node_filesystem_avail_bytes{{fstype!~\"tmpfs|ramfs\",{cl}}}[1h], {} * 3600) < 0 and node_filesystem_avail_bytes{{fstype!~\"tmpfs|ramfs\",{cl}}} / node_filesystem_size_bytes < 0.4 and node_filesystem_readonly == 0",
                4 + v
            ),
        ),
        6 => (
            "disk space low: ratio and on (...) readonly",
            true,
            "HostDiskSpaceLow",
            format!(
                "(node_filesystem_avail_bytes{{mountpoint=~\"/|/var\",instance=~\"host-{c}[0-9]:9100\"}} / node_filesystem_size_bytes * 100) < {} and on (instance, device, mountpoint) node_filesystem_readonly == 0",
                f(5.0 + v as f64 * 0.2)
            ),
        ),
        7 => (
            "network saturation: rate / speed",
            true,
            "HostNetworkReceiveSaturated",
            format!(
                "(rate(node_network_receive_bytes_total{{device!=\"lo\",{cl}}}[{w}]) / node_network_speed_bytes > {}) and node_network_speed_bytes > 0",
                f(0.6 + v as f64 * 0.005)
            ),
        ),
        8 => (
            "network record: sum by (cluster) of rate, regex matchers",
            false,
            "cluster:node_network_receive_bytes:rate",
            format!(
                "sum by (cluster) (rate(node_network_receive_bytes_total{{device!~\"lo|veth.*\",cluster=~\"c[0-{c}]\"}}[{w}])) / {}",
                1 + v / 30
            ),
        ),
        9 => (
            "network errors: rate / rate and rate",
            true,
            "HostNetworkReceiveErrors",
            format!(
                "rate(node_network_receive_errs_total{{{cl}}}[{w}]) / rate(node_network_receive_packets_total{{{cl}}}[{w}]) > {} and rate(node_network_receive_packets_total{{{cl}}}[{w}]) > 0",
                f(0.0001 + v as f64 * 0.00001)
            ),
        ),
        10 => (
            "disk busy: rate of io time",
            true,
            "HostDiskBusy",
            format!(
                "rate(node_disk_io_time_seconds_total{{instance=~\"host-{c}[0-9]:9100\"}}[{w}]) > {}",
                f(0.5 + v as f64 * 0.005)
            ),
        ),
        11 => (
            "disk latency: rate / rate and rate",
            true,
            "HostDiskReadLatency",
            format!(
                "rate(node_disk_read_time_seconds_total{{{cl}}}[{w}]) / rate(node_disk_reads_completed_total{{{cl}}}[{w}]) > {} and rate(node_disk_reads_completed_total{{{cl}}}[{w}]) > 0",
                f(0.0025 + v as f64 * 0.0001)
            ),
        ),
        12 => (
            "context switches: rate",
            true,
            "HostContextSwitching",
            format!(
                "rate(node_context_switches_total{{{cl}}}[{w}]) > {}",
                38_000 + v * 100
            ),
        ),
        13 => (
            "load record: max_over_time over 10m-1h",
            false,
            "instance:node_load1:max_over_time",
            format!("max_over_time(node_load1{{{cl}}}[{long}]) + {v}"),
        ),
        14 => (
            "postgres down: avg_over_time of pg_up",
            true,
            "PostgresDown",
            format!(
                "avg_over_time(pg_up{{{cl}}}[{w}]) < {}",
                f(0.5 + v as f64 * 0.01)
            ),
        ),
        15 => (
            "postgres rollback ratio: sums by (datname, instance) of rates",
            true,
            "PostgresHighRollbackRate",
            {
                let sel = format!("datname!~\"template.*|postgres\",{cl}");
                let w = ["2m", "3m", "5m"][(v / CLUSTERS) % 3];
                format!(
                    "sum by (datname, instance) (rate(pg_stat_database_xact_rollback{{{sel}}}[{w}])) / (sum by (datname, instance) (rate(pg_stat_database_xact_rollback{{{sel}}}[{w}])) + sum by (datname, instance) (rate(pg_stat_database_xact_commit{{{sel}}}[{w}]))) > {}",
                    f(0.02 + v as f64 * 0.0005)
                )
            },
        ),
        16 => (
            "postgres deadlocks: increase",
            true,
            "PostgresDeadlocks",
            format!(
                "increase(pg_stat_database_deadlocks{{datname!~\"template.*|postgres\",{cl}}}[{long}]) > {}",
                3 + v / 10
            ),
        ),
        17 => (
            "postgres connections: sum by vs min by",
            true,
            "PostgresTooManyConnections",
            format!(
                "sum by (instance) (pg_stat_activity_count{{{cl}}}) > min by (instance) (pg_settings_max_connections{{{cl}}} * {})",
                f(0.8 + v as f64 * 0.005)
            ),
        ),
        18 => (
            "postgres cache hit ratio: three sums of rates",
            true,
            "PostgresLowCacheHitRatio",
            format!(
                "sum by (instance) (rate(pg_stat_database_blks_hit{{{cl}}}[{w}])) / (sum by (instance) (rate(pg_stat_database_blks_hit{{{cl}}}[{w}])) + sum by (instance) (rate(pg_stat_database_blks_read{{{cl}}}[{w}]))) < {}",
                f(0.9 - v as f64 * 0.002)
            ),
        ),
        19 => (
            "postgres record: sum by (cluster, datname) of rate",
            false,
            "cluster_datname:pg_xact_commit:rate",
            format!(
                "sum by (cluster, datname) (rate(pg_stat_database_xact_commit{{datname!=\"postgres\",cluster=~\"c[0-{c}]\"}}[{w}])) * {}",
                1 + v / 30
            ),
        ),
        20 => (
            "redis memory: ratio and on (instance)",
            true,
            "RedisOutOfMemory",
            format!(
                "redis_memory_used_bytes{{{cl}}} / redis_memory_max_bytes * 100 > {} and on (instance) redis_memory_max_bytes > 0",
                f(90.0 + v as f64 * 0.2)
            ),
        ),
        21 => (
            "redis clients ratio",
            true,
            "RedisTooManyConnections",
            format!(
                "redis_connected_clients{{{cl}}} / redis_config_maxclients * 100 > {}",
                f(80.0 + v as f64 * 0.3)
            ),
        ),
        22 => (
            "redis record: hit ratio from three sums of rates",
            false,
            "instance:redis_keyspace_hit_ratio:rate",
            format!(
                "sum by (instance) (rate(redis_keyspace_hits_total{{{cl}}}[{w}])) / (sum by (instance) (rate(redis_keyspace_hits_total{{{cl}}}[{w}])) + sum by (instance) (rate(redis_keyspace_misses_total{{{cl}}}[{w}]))) * {}",
                1 + v / 30
            ),
        ),
        23 => (
            "redis rejected connections: increase",
            true,
            "RedisRejectedConnections",
            format!(
                "increase(redis_rejected_connections_total{{{cl}}}[{long}]) > {}",
                20 + v
            ),
        ),
        24 => (
            "redis record: topk of rate, regex matchers",
            false,
            "cluster:redis_commands:topk_rate",
            format!(
                "topk({}, rate(redis_commands_processed_total{{cluster=~\"c[{c}-9]\"}}[{w}]))",
                1 + v / 10
            ),
        ),
        25 => (
            "redis last save: time() minus a gauge",
            true,
            "RedisMissingBackup",
            format!(
                "time() - redis_rdb_last_save_timestamp_seconds{{{cl}}} > {}",
                86_400 + v * 600
            ),
        ),
        26 => (
            "redis memory growth: deriv over 10m-1h",
            true,
            "RedisMemoryGrowing",
            format!(
                "deriv(redis_memory_used_bytes{{{cl}}}[{long}]) > {}",
                200_000 + v * 10_000
            ),
        ),
        _ => unreachable!(),
    };
    let name = if alert {
        name.to_string()
    } else {
        // Recorded series must not collide across rules, so each recording rule has its own name.
        format!("{name}_v{v:02}")
    };
    RuleText {
        shape,
        alert,
        name,
        expr,
    }
}

const TEMPLATES: usize = 27;

/// The rule file (50 groups of 20), and the shape of each rule in file order.
fn rule_file() -> (String, Vec<&'static str>) {
    let mut text = String::from("groups:\n");
    let mut shapes = Vec::new();
    let mut distinct = std::collections::HashSet::new();
    for group in 0..GROUPS {
        text.push_str(&format!(
            "  - name: bench-{group:02}\n    interval: 15s\n    rules:\n"
        ));
        for slot in 0..RULES_PER_GROUP {
            let index = group * RULES_PER_GROUP + slot;
            let rule = rule_of(index % TEMPLATES, index / TEMPLATES);
            shapes.push(rule.shape);
            assert!(
                distinct.insert(rule.expr.clone()),
                "two rules share {}",
                rule.expr
            );
            let expr = rule.expr.replace('\'', "''");
            if rule.alert {
                let hold = ["0s", "1m", "5m", "15m"][index % 4];
                text.push_str(&format!(
                    "      - alert: {}\n        expr: '{expr}'\n        for: {hold}\n        labels:\n          severity: {}\n          variant: v{:02}\n        annotations:\n          summary: '{{{{ $labels.instance }}}} {}: {{{{ $value | printf \"%.2f\" }}}}'\n",
                    rule.name,
                    ["warning", "critical"][index % 2],
                    index / TEMPLATES,
                    rule.name,
                ));
            } else {
                text.push_str(&format!(
                    "      - record: {}\n        expr: '{expr}'\n",
                    rule.name
                ));
            }
        }
    }
    (text, shapes)
}

fn group_index(group: &Group) -> usize {
    group.name["bench-".len()..].parse().unwrap()
}

/// What a round wrote.
#[derive(Default)]
struct Written {
    alert_samples: usize,
    alert_rules_with_output: usize,
    record_samples: usize,
    record_rules_with_output: usize,
}

impl Written {
    fn add(&mut self, group: &Group, outcomes: &[prismwatch::rules::engine::RuleOutcome]) {
        check(group, outcomes);
        for (rule, outcome) in group.rules.iter().zip(outcomes) {
            let nonempty = usize::from(outcome.samples > 0);
            match rule.kind {
                RuleKind::Alert { .. } => {
                    self.alert_samples += outcome.samples;
                    self.alert_rules_with_output += nonempty;
                }
                RuleKind::Record { .. } => {
                    self.record_samples += outcome.samples;
                    self.record_rules_with_output += nonempty;
                }
            }
        }
    }
}

fn check(group: &Group, outcomes: &[prismwatch::rules::engine::RuleOutcome]) {
    for (rule, outcome) in group.rules.iter().zip(outcomes) {
        if let Some(error) = &outcome.error {
            panic!(
                "{}: rule {} failed: {error}: {}",
                group.name, outcome.name, rule.expr
            );
        }
    }
}

/// Alerts held by one rule's serialised state (a list of alerts).
fn count_alerts(value: &serde_json::Value) -> usize {
    value.as_array().map_or(0, Vec::len)
}

// ---------------------------------------------------------------------------------------------
// The dump for Prometheus.

/// Writes the rule file, the first hour as OpenMetrics (each family's samples together, as the
/// format requires) and the next scrapes as one exposition each.
fn dump(dir: &Path, rule_text: &str, shapes: &[&str], specs: &[Spec], start_ms: i64) {
    std::fs::create_dir_all(dir.join("live")).unwrap();
    std::fs::write(dir.join("rules.yml"), rule_text).unwrap();
    std::fs::write(dir.join("shapes.txt"), shapes.join("\n") + "\n").unwrap();
    let names: Vec<String> = specs
        .iter()
        .map(|spec| {
            let labels: Vec<String> = spec
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            format!("{}{{{}}}", spec.family, labels.join(","))
        })
        .collect();
    let mut live: Vec<Vec<f64>> = Vec::with_capacity(specs.len());
    let file = std::fs::File::create(dir.join("series.om")).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut by_family: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, spec) in specs.iter().enumerate() {
        by_family.entry(spec.family).or_default().push(index);
        live.push(Vec::new());
    }
    for indexes in by_family.values() {
        for &index in indexes {
            let mut generator = Generator::new(&specs[index]);
            for step in 0..HOUR_STEPS {
                let ts = start_ms + step as i64 * SCRAPE_MS;
                let value = generator.step();
                writeln!(
                    out,
                    "{} {value} {}.{:03}",
                    names[index],
                    ts / 1000,
                    ts % 1000
                )
                .unwrap();
            }
            live[index] = (0..DUMP_EXTRA_STEPS).map(|_| generator.step()).collect();
        }
    }
    writeln!(out, "# EOF").unwrap();
    out.flush().unwrap();
    for extra in 0..DUMP_EXTRA_STEPS {
        let step = HOUR_STEPS + extra;
        let ts = start_ms + step as i64 * SCRAPE_MS;
        let file = std::fs::File::create(dir.join("live").join(format!("{step}.prom"))).unwrap();
        let mut out = std::io::BufWriter::new(file);
        for (name, values) in names.iter().zip(&live) {
            writeln!(out, "{name} {} {ts}", values[extra]).unwrap();
        }
        out.flush().unwrap();
    }
    eprintln!(
        "dumped {} rules and {} series, {HOUR_STEPS} scrapes from {start_ms} ms and {DUMP_EXTRA_STEPS} more, to {}",
        GROUPS * RULES_PER_GROUP,
        specs.len(),
        dir.display()
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers.

struct ProcessMemory {
    rss: usize,
    hwm: usize,
}

impl ProcessMemory {
    fn read() -> ProcessMemory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<usize>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        ProcessMemory {
            rss: field("VmRSS:"),
            hwm: field("VmHWM:"),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let cut: String = text.chars().take(width - 3).collect();
        format!("{cut}...")
    }
}
