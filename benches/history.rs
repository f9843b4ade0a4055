//! Micro-benchmark of the history store: ingest and render throughput, and bytes per sample for
//! typical series shapes. Prints figures; `cargo bench --bench history`.

use std::time::Instant;

use prismwatch::exposition;
use prismwatch::history::{History, HistoryLimits};
use prismwatch::model::{Batch, MetricKind};

const SERIES: usize = 10_000;
const STEPS: i64 = 3_600;

fn main() {
    let mut history = History::new(HistoryLimits {
        retention_ms: 3_600_000,
        max_series: SERIES * 2,
    });
    let names: Vec<String> = (0..SERIES).map(|i| format!("{i}")).collect();
    let started = Instant::now();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for step in 0..STEPS {
        let mut batch = Batch::new();
        batch.family(
            "bench_constant_bytes",
            MetricKind::Gauge,
            "Sizes that never change.",
        );
        batch.family(
            "bench_counter_total",
            MetricKind::Counter,
            "Counters with varied increments.",
        );
        batch.family(
            "bench_gauge",
            MetricKind::Gauge,
            "A random walk with two decimals.",
        );
        batch.family(
            "bench_idle_total",
            MetricKind::Counter,
            "Counters that rarely move.",
        );
        for (index, name) in names.iter().enumerate() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state % 1_000) as f64;
            let value = match index % 4 {
                0 => 270_553_174_016.0,
                1 => (step as f64) * 4_096.0 + noise,
                2 => ((step as f64).sin() * 100.0 + noise / 100.0).round() / 100.0,
                _ => (step / 60) as f64,
            };
            let family = [
                "bench_constant_bytes",
                "bench_counter_total",
                "bench_gauge",
                "bench_idle_total",
            ][index % 4];
            batch.push(family, &[("id", name), ("host", "bench")], value);
        }
        history.ingest("bench", 1_700_000_000_000 + step * 1_000, batch);
    }
    let ingest = started.elapsed();
    let stats = history.stats();
    for (family, shape) in [
        ("bench_constant_bytes", "constant"),
        ("bench_counter_total", "byte counter with noisy increments"),
        ("bench_gauge", "random walk, two decimals"),
        ("bench_idle_total", "counter stepping once a minute"),
    ] {
        let mut single = History::new(HistoryLimits::default());
        for range in history
            .select(family, |_| true, i64::MIN, i64::MAX)
            .iter()
            .take(100)
        {
            for (ts, value) in &range.samples {
                let mut batch = Batch::new();
                batch.family(family, MetricKind::Gauge, "shape");
                batch.push(
                    family,
                    &[("id", range.labels.get("id").unwrap_or(""))],
                    *value,
                );
                single.ingest(range.labels.get("id").unwrap_or(""), *ts, batch);
            }
        }
        println!(
            "  {shape:40} {:.3} bytes/sample",
            single.stats().bytes_per_sample()
        );
    }
    let samples = SERIES as f64 * STEPS as f64;
    println!(
        "ingest: {SERIES} series x {STEPS} steps in {:.2} s = {:.2} M samples/s",
        ingest.as_secs_f64(),
        samples / ingest.as_secs_f64() / 1e6
    );
    println!(
        "history: {} samples, {:.3} bytes/sample in chunks, {:.1} MiB in all ({:.1} bytes/sample all-in)",
        stats.samples,
        stats.bytes_per_sample(),
        stats.total_bytes as f64 / 1048576.0,
        stats.total_bytes as f64 / stats.samples as f64
    );
    let started = Instant::now();
    let mut out = String::new();
    let renders = 20;
    for _ in 0..renders {
        out.clear();
        exposition::render(&history, &mut out);
    }
    println!(
        "render: {SERIES} series in {:.3} ms ({} bytes)",
        started.elapsed().as_secs_f64() * 1e3 / renders as f64,
        out.len()
    );
    let started = Instant::now();
    let ranges = history.select(
        "bench_counter_total",
        |_| true,
        1_700_000_000_000,
        1_700_000_000_000 + STEPS * 1_000,
    );
    let decoded: usize = ranges.iter().map(|r| r.samples.len()).sum();
    println!(
        "range query: {} series, {decoded} samples decoded in {:.1} ms",
        ranges.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
}
