//! AI usage ingest throughput and memory per series: parse a JSON batch and record it (with
//! the state saved after each batch, as the daemon does), on one core. `cargo bench --bench ai_ingest`.

use std::time::Instant;

use prismwatch::config::{Overrides, parse};
use prismwatch::spend::SpendTracker;
use prismwatch::spend::event::parse_batch;

const BATCH: usize = 1_000;
const BATCHES: usize = 200;

fn main() {
    let dir = std::env::temp_dir().join(format!("prismwatch-ai-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let config = parse(
        "bench",
        "[ai]\nmax_label_values = 1000\nmax_models = 1000\n",
        &Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .ai;
    let allowed = config.allowed_labels.clone();
    let tracker = SpendTracker::open(config, &dir);
    let models = [
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4",
    ];
    let bodies: Vec<String> = (0..BATCHES)
        .map(|b| {
            let events: Vec<String> = (0..BATCH)
                .map(|i| {
                    let n = b * BATCH + i;
                    format!(
                        r#"{{"provider":"{}","model":"{}","input_tokens":{},"output_tokens":{},"cached_tokens":{},"latency_ms":{},"cache_hit":{},"feature":"f{}","tenant":"t{}"}}"#,
                        if n % 5 < 2 { "google" } else if n % 5 == 4 { "anthropic" } else { "openai" },
                        models[n % 5],
                        500 + n % 3000,
                        50 + n % 700,
                        n % 400,
                        200 + n % 5000,
                        n.is_multiple_of(3),
                        n % 20,
                        n % 50
                    )
                })
                .collect();
            format!(r#"{{"events":[{}]}}"#, events.join(","))
        })
        .collect();
    let bytes: usize = bodies.iter().map(String::len).sum();
    let started = Instant::now();
    let now = 1_795_600_000_000;
    for body in &bodies {
        let events = parse_batch(body.as_bytes(), &allowed, now).unwrap_or_else(|e| panic!("{e}"));
        tracker
            .ingest(events, now)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = (BATCH * BATCHES) as f64;
    println!(
        "ingest: {events} events in {elapsed:.2} s = {:.0} events/s on one core ({:.1} MB/s of JSON), state saved after each batch of {BATCH}",
        events / elapsed,
        bytes as f64 / elapsed / 1e6
    );
    let report = tracker.report(now).unwrap_or_else(|| panic!("report"));
    let series = report.by_model.len();
    let state = std::fs::metadata(dir.join("spend.json"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "series: {series} (provider x model x feature x tenant); saved state {state} bytes = {:.0} bytes per series",
        state as f64 / series as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
