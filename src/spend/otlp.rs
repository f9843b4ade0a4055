//! OTLP/HTTP metrics (protobuf or JSON) carrying the OpenTelemetry GenAI semantic conventions:
//! `gen_ai.client.token.usage` (tokens by `gen_ai.token.type`) and
//! `gen_ai.client.operation.duration` (requests and latency), turned into usage events.
//!
//! A request is validated whole before anything is recorded (a bad point refuses the request,
//! naming the field). Points are aggregated, never expanded: a histogram point of any count is
//! one record, so the cost of a request depends on its size, not on the counts it claims.
//!
//! SDKs export cumulative histograms by default, so each stream's previous sum, count and
//! buckets are kept (and saved with the ledger, so a restart does not count a stream again);
//! only the increase since the last export is recorded, and a new start time or a smaller value
//! is a reset (the whole value counts), as Prometheus treats a counter reset. A stream is keyed
//! only by what we keep (metric, token type, provider, model, allowed labels, and the resource's
//! `service.name` and `service.instance.id`), so attributes we drop cannot multiply streams:
//! points that differ only in those are summed. A live stream is never evicted for a new one.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, HistogramDataPoint, metric};
use prost::Message;
use serde::{Deserialize, Serialize};

use super::event::MAX_TEXT;
use super::ledger::{LATENCY_BUCKETS, Latency, UsageEvent};
use super::pricing::Tokens;

pub const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
pub const OPERATION_DURATION: &str = "gen_ai.client.operation.duration";

/// Streams remembered for cumulative-to-delta conversion.
pub const MAX_STREAMS: usize = 2_000;

/// A stream seen within this time is live and never evicted to make room for another.
pub const STREAM_LIVE_MS: i64 = 3_600_000;

/// Largest sum or count a point may carry (far above any real export; keeps totals finite).
const MAX_VALUE: f64 = 1e15;

/// Resource attributes that tell one client's streams from another's.
const IDENTITY: [&str; 2] = ["service.name", "service.instance.id"];

/// Decodes a request body by content type.
pub fn decode(body: &[u8], json: bool) -> Result<ExportMetricsServiceRequest, String> {
    if json {
        serde_json::from_slice(body).map_err(|e| format!("invalid OTLP JSON: {e}"))
    } else {
        ExportMetricsServiceRequest::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}"))
    }
}

/// Previous cumulative values per stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CumulativeState {
    streams: BTreeMap<String, Stream>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Stream {
    start: u64,
    sum: f64,
    count: f64,
    /// Cumulative counts per [`LATENCY_BUCKETS`] bound (durations only).
    buckets: Vec<f64>,
    last_seen_ms: i64,
}

/// What one export request contained.
#[derive(Debug, Default)]
pub struct Extracted {
    pub events: Vec<UsageEvent>,
    /// Data points of GenAI metrics read.
    pub points: usize,
    /// Cumulative streams not counted because the stream table is full of live streams.
    pub refused_streams: usize,
}

/// One stream's values in this request, summed over the points that share its key.
#[derive(Clone, Debug, Default)]
struct Aggregate {
    cumulative: bool,
    duration: bool,
    token_type: String,
    start: u64,
    sum: f64,
    count: f64,
    buckets: [f64; LATENCY_BUCKETS.len()],
    provider: String,
    model: String,
    labels: BTreeMap<String, String>,
}

/// Turns the GenAI metrics of a request into usage events (deltas). Other metrics are ignored.
/// Nothing is remembered unless the whole request is valid.
pub fn extract(
    request: &ExportMetricsServiceRequest,
    state: &mut CumulativeState,
    allowed_labels: &[String],
    now_ms: i64,
) -> Result<Extracted, String> {
    let mut out = Extracted::default();
    let mut streams: BTreeMap<String, Aggregate> = BTreeMap::new();
    for (r, resource_metrics) in request.resource_metrics.iter().enumerate() {
        let resource_attributes = resource_metrics
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let identity: Vec<String> = IDENTITY
            .iter()
            .map(|key| {
                resource_attributes
                    .iter()
                    .find(|kv| kv.key == *key)
                    .and_then(|kv| text(kv.value.as_ref()?))
                    .map(|v| v.chars().take(MAX_TEXT).collect())
                    .unwrap_or_default()
            })
            .collect();
        for (s, scope_metrics) in resource_metrics.scope_metrics.iter().enumerate() {
            for (m, metric) in scope_metrics.metrics.iter().enumerate() {
                if metric.name != TOKEN_USAGE && metric.name != OPERATION_DURATION {
                    continue;
                }
                let Some(metric::Data::Histogram(histogram)) = &metric.data else {
                    continue;
                };
                let cumulative =
                    histogram.aggregation_temporality == AggregationTemporality::Cumulative as i32;
                let duration = metric.name == OPERATION_DURATION;
                for (p, point) in histogram.data_points.iter().enumerate() {
                    out.points += 1;
                    let path = format!(
                        "resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}].histogram.dataPoints[{p}]"
                    );
                    let attributes = attributes_of(resource_attributes, &point.attributes);
                    let sum = point.sum.unwrap_or(0.0);
                    check_value(&path, "sum", sum, cumulative)?;
                    check_value(&path, "count", point.count as f64, cumulative)?;
                    let name = |keys: &[&str]| -> Result<String, String> {
                        match keys.iter().find_map(|k| attributes.get(*k).map(|v| (k, v))) {
                            None => Ok("unknown".into()),
                            Some((key, value)) => checked(&path, key, value),
                        }
                    };
                    let provider = name(&["gen_ai.provider.name", "gen_ai.system"])?;
                    let model = name(&["gen_ai.response.model", "gen_ai.request.model"])?;
                    let mut labels = BTreeMap::new();
                    for label in allowed_labels {
                        if let Some(value) = attributes.get(label) {
                            labels.insert(label.clone(), checked(&path, label, value)?);
                        }
                    }
                    let token_type = if duration {
                        String::new()
                    } else {
                        match attributes.get("gen_ai.token.type").map(String::as_str) {
                            Some("input") => "input".to_string(),
                            Some("output") => "output".to_string(),
                            // Not in the conventions yet; some instrumentations send it.
                            Some("cached" | "cache_read") => "cached".to_string(),
                            _ => continue,
                        }
                    };
                    let key = format!(
                        "{}|{}|{token_type}|{provider}|{model}|{labels:?}|{identity:?}",
                        metric.name,
                        if cumulative { "c" } else { "d" },
                    );
                    let aggregate = streams.entry(key).or_insert_with(|| Aggregate {
                        cumulative,
                        duration,
                        token_type: token_type.clone(),
                        provider: provider.clone(),
                        model: model.clone(),
                        labels: labels.clone(),
                        ..Aggregate::default()
                    });
                    aggregate.start = aggregate.start.max(point.start_time_unix_nano);
                    aggregate.sum += sum;
                    aggregate.count += point.count as f64;
                    if duration {
                        for (total, add) in aggregate.buckets.iter_mut().zip(our_buckets(point)) {
                            *total += add;
                        }
                    }
                }
            }
        }
    }
    for (key, aggregate) in streams {
        let (sum, count, buckets) = if aggregate.cumulative {
            match state.delta(&key, &aggregate, now_ms) {
                Some(delta) => delta,
                None => {
                    out.refused_streams += 1;
                    continue;
                }
            }
        } else {
            (aggregate.sum, aggregate.count, aggregate.buckets)
        };
        if count == 0.0 && sum == 0.0 {
            continue;
        }
        let mut event = UsageEvent {
            provider: aggregate.provider,
            model: aggregate.model,
            labels: aggregate.labels,
            ..UsageEvent::default()
        };
        if aggregate.duration {
            event.requests = count;
            event.latency = Some(Latency {
                buckets,
                sum,
                count,
            });
        } else {
            event.tokens = match aggregate.token_type.as_str() {
                "input" => Tokens {
                    input: sum,
                    ..Tokens::default()
                },
                "output" => Tokens {
                    output: sum,
                    ..Tokens::default()
                },
                _ => Tokens {
                    cached: sum,
                    input: sum,
                    ..Tokens::default()
                },
            };
        }
        out.events.push(event);
    }
    Ok(out)
}

/// Refuses what no real export carries: non-finite, negative or absurdly large values.
fn check_value(path: &str, field: &str, value: f64, cumulative: bool) -> Result<(), String> {
    if !value.is_finite() {
        return Err(format!("{path}.{field}: {value} is not a finite number"));
    }
    if value < 0.0 {
        let kind = if cumulative { "cumulative" } else { "delta" };
        return Err(format!(
            "{path}.{field}: {value} is negative; a {kind} histogram's {field} cannot be"
        ));
    }
    if value > MAX_VALUE {
        return Err(format!(
            "{path}.{field}: {value} is larger than {MAX_VALUE}"
        ));
    }
    Ok(())
}

/// A kept attribute's value, bounded like the JSON endpoint's names.
fn checked(path: &str, key: &str, value: &str) -> Result<String, String> {
    if value.is_empty() || value.chars().count() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(format!(
            "{path}.attributes[{key:?}]: expected 1 to {MAX_TEXT} printable characters"
        ));
    }
    Ok(value.to_string())
}

/// A duration point's counts as cumulative counts per [`LATENCY_BUCKETS`] bound: an OTLP bucket
/// counts under our bound when its upper bound is at most ours. Without usable buckets, the
/// point's mean stands for every request.
fn our_buckets(point: &HistogramDataPoint) -> [f64; LATENCY_BUCKETS.len()] {
    let mut out = [0.0; LATENCY_BUCKETS.len()];
    let bounds = &point.explicit_bounds;
    let usable = !bounds.is_empty()
        && point.bucket_counts.len() == bounds.len() + 1
        && bounds.iter().all(|b| b.is_finite())
        && bounds.windows(2).all(|w| w[0] < w[1]);
    if usable {
        for (upper, count) in bounds.iter().zip(&point.bucket_counts) {
            for (slot, bound) in out.iter_mut().zip(LATENCY_BUCKETS) {
                if *upper <= bound {
                    *slot += *count as f64;
                }
            }
        }
        // Buckets may not claim more than the count.
        let count = point.count as f64;
        for slot in &mut out {
            *slot = slot.min(count);
        }
    } else if point.count > 0 {
        let mean = point.sum.unwrap_or(0.0) / point.count as f64;
        for (slot, bound) in out.iter_mut().zip(LATENCY_BUCKETS) {
            if mean <= bound {
                *slot = point.count as f64;
            }
        }
    }
    out
}

type Delta = (f64, f64, [f64; LATENCY_BUCKETS.len()]);

impl CumulativeState {
    /// The increase of a stream since its last export, or None when the stream is new and the
    /// table is full of live streams (it is then not remembered, so it is never counted twice).
    fn delta(&mut self, key: &str, now: &Aggregate, now_ms: i64) -> Option<Delta> {
        let delta = match self.streams.get(key) {
            Some(previous)
                if previous.start == now.start
                    && now.sum >= previous.sum
                    && now.count >= previous.count =>
            {
                let mut buckets = now.buckets;
                for (bucket, before) in buckets.iter_mut().zip(&previous.buckets) {
                    *bucket = (*bucket - before).max(0.0);
                }
                (now.sum - previous.sum, now.count - previous.count, buckets)
            }
            Some(_) => (now.sum, now.count, now.buckets),
            None => {
                if self.streams.len() >= MAX_STREAMS && !self.evict_one(now_ms) {
                    return None;
                }
                (now.sum, now.count, now.buckets)
            }
        };
        self.streams.insert(
            key.to_string(),
            Stream {
                start: now.start,
                sum: now.sum,
                count: now.count,
                buckets: if now.duration {
                    now.buckets.to_vec()
                } else {
                    Vec::new()
                },
                last_seen_ms: now_ms,
            },
        );
        Some(delta)
    }

    /// Drops the stream seen longest ago if it is no longer live.
    fn evict_one(&mut self, now_ms: i64) -> bool {
        let oldest = self
            .streams
            .iter()
            .min_by_key(|(_, s)| s.last_seen_ms)
            .filter(|(_, s)| s.last_seen_ms < now_ms - STREAM_LIVE_MS)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => {
                self.streams.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Forgets streams unseen since `cutoff_ms`.
    pub fn forget_before(&mut self, cutoff_ms: i64) {
        self.streams.retain(|_, s| s.last_seen_ms >= cutoff_ms);
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// Resource and point attributes as strings, point attributes winning.
fn attributes_of(resource: &[KeyValue], point: &[KeyValue]) -> BTreeMap<String, String> {
    resource
        .iter()
        .chain(point)
        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?)?)))
        .collect()
}

fn text(value: &AnyValue) -> Option<String> {
    match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OTLP/JSON request as the specification writes it (int64 as strings, camelCase).
    fn json_request(sum: f64, count: u64, start: &str) -> String {
        format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"chat-api"}}}}]}},
            "scopeMetrics":[{{"metrics":[{{"name":"gen_ai.client.token.usage","unit":"{{token}}","histogram":{{"aggregationTemporality":2,
            "dataPoints":[{{"startTimeUnixNano":"{start}","timeUnixNano":"1800000000000000000","count":"{count}","sum":{sum},
            "attributes":[{{"key":"gen_ai.token.type","value":{{"stringValue":"input"}}}},{{"key":"gen_ai.provider.name","value":{{"stringValue":"gcp.gemini"}}}},
            {{"key":"gen_ai.request.model","value":{{"stringValue":"gemini-2.5-flash"}}}},{{"key":"feature","value":{{"stringValue":"chat"}}}}]}}]}}}}]}}]}}]}}"#
        )
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn cumulative_json_points_become_deltas() -> Result<(), String> {
        let mut state = CumulativeState::default();
        let allowed = vec!["feature".to_string()];
        let first = extract(
            &decode(json_request(100.0, 2, "1").as_bytes(), true)?,
            &mut state,
            &allowed,
            NOW,
        )?;
        assert_eq!(first.events.len(), 1);
        assert_eq!(first.events[0].tokens.input, 100.0);
        assert_eq!(first.events[0].provider, "gcp.gemini");
        assert_eq!(
            first.events[0].labels.get("feature").map(String::as_str),
            Some("chat")
        );
        let second = extract(
            &decode(json_request(250.0, 5, "1").as_bytes(), true)?,
            &mut state,
            &allowed,
            NOW,
        )?;
        assert_eq!(second.events[0].tokens.input, 150.0);
        // Same totals again: nothing new.
        assert!(
            extract(
                &decode(json_request(250.0, 5, "1").as_bytes(), true)?,
                &mut state,
                &allowed,
                NOW,
            )?
            .events
            .is_empty()
        );
        // A restarted client (new start time) counts whole.
        let restarted = extract(
            &decode(json_request(40.0, 1, "2").as_bytes(), true)?,
            &mut state,
            &allowed,
            NOW,
        )?;
        assert_eq!(restarted.events[0].tokens.input, 40.0);
        Ok(())
    }

    #[test]
    fn protobuf_roundtrip_decodes() -> Result<(), String> {
        let request = decode(json_request(7.0, 1, "1").as_bytes(), true)?;
        let bytes = request.encode_to_vec();
        assert_eq!(decode(&bytes, false)?, request);
        assert!(decode(b"\xff\xff\xff", false).is_err());
        Ok(())
    }

    use opentelemetry_proto::tonic::metrics::v1::{
        Histogram, Metric, ResourceMetrics, ScopeMetrics,
    };

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        }
    }

    /// A request of one histogram metric with the given points.
    fn request(
        name: &str,
        temporality: AggregationTemporality,
        points: Vec<HistogramDataPoint>,
    ) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: name.into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: points,
                            aggregation_temporality: temporality as i32,
                        })),
                        ..Metric::default()
                    }],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
    }

    fn point(attributes: Vec<KeyValue>, sum: f64, count: u64) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: 1,
            sum: Some(sum),
            count,
            ..HistogramDataPoint::default()
        }
    }

    fn chat() -> Vec<KeyValue> {
        vec![
            kv("gen_ai.provider.name", "openai"),
            kv("gen_ai.request.model", "gpt-4o"),
            kv("gen_ai.token.type", "input"),
        ]
    }

    #[test]
    fn duration_points_are_aggregated_never_expanded() -> Result<(), String> {
        // 100 points of 10,000 requests each: one record, whatever the counts.
        let points = (0..100)
            .map(|n| {
                let mut p = point(
                    vec![kv("junk", &n.to_string()), kv("gen_ai.system", "openai")],
                    10_000.0 * 0.7,
                    10_000,
                );
                p.explicit_bounds = vec![0.5, 1.0];
                p.bucket_counts = vec![2_000, 8_000, 0];
                p
            })
            .collect();
        let extracted = extract(
            &request(OPERATION_DURATION, AggregationTemporality::Delta, points),
            &mut CumulativeState::default(),
            &[],
            NOW,
        )?;
        assert_eq!(extracted.events.len(), 1);
        let event = &extracted.events[0];
        assert_eq!(event.requests, 1e6);
        let latency = event.latency.clone().unwrap_or_default();
        assert_eq!(latency.count, 1e6);
        // Bounds 0.25, 0.5, 1.0: nothing is known to be under 0.25, 20% under 0.5, all under 1.
        assert_eq!(latency.buckets[..4], [0.0, 0.0, 2e5, 1e6]);
        Ok(())
    }

    #[test]
    fn negative_and_non_finite_values_and_long_names_are_refused_naming_the_field() {
        let refused = |points: Vec<HistogramDataPoint>, temporality| {
            let mut state = CumulativeState::default();
            let result = extract(
                &request(TOKEN_USAGE, temporality, points),
                &mut state,
                &[],
                NOW,
            );
            assert!(state.is_empty(), "a refused request left stream state");
            result.err().unwrap_or_default()
        };
        let path = "resourceMetrics[0].scopeMetrics[0].metrics[0].histogram.dataPoints[1]";
        let good = point(chat(), 10.0, 1);
        assert_eq!(
            refused(
                vec![good.clone(), point(chat(), -5000.0, 1)],
                AggregationTemporality::Delta
            ),
            format!("{path}.sum: -5000 is negative; a delta histogram's sum cannot be")
        );
        assert_eq!(
            refused(
                vec![good.clone(), point(chat(), f64::INFINITY, 1)],
                AggregationTemporality::Delta
            ),
            format!("{path}.sum: inf is not a finite number")
        );
        assert_eq!(
            refused(
                vec![good.clone(), point(chat(), f64::NAN, 1)],
                AggregationTemporality::Cumulative
            ),
            format!("{path}.sum: NaN is not a finite number")
        );
        let mut long = chat();
        long[0] = kv("gen_ai.provider.name", &"x".repeat(100_000));
        assert_eq!(
            refused(
                vec![good.clone(), point(long, 1.0, 1)],
                AggregationTemporality::Delta
            ),
            format!(
                "{path}.attributes[\"gen_ai.provider.name\"]: expected 1 to 200 printable characters"
            )
        );
        let mut forged = chat();
        forged[1] = kv(
            "gen_ai.request.model",
            "gpt\n2026-12-01T00:00:00Z ERROR forged",
        );
        assert!(
            refused(
                vec![good, point(forged, 1.0, 1)],
                AggregationTemporality::Delta
            )
            .ends_with("expected 1 to 200 printable characters")
        );
    }

    #[test]
    fn a_decreasing_cumulative_is_a_reset() -> Result<(), String> {
        let mut state = CumulativeState::default();
        let mut total = 0.0;
        for sum in [1_000.0, 1_500.0, 200.0, 300.0] {
            let extracted = extract(
                &request(
                    TOKEN_USAGE,
                    AggregationTemporality::Cumulative,
                    vec![point(chat(), sum, 1)],
                ),
                &mut state,
                &[],
                NOW,
            )?;
            total += extracted.events.iter().map(|e| e.tokens.input).sum::<f64>();
        }
        assert_eq!(total, 1_500.0 + 300.0);
        Ok(())
    }

    #[test]
    fn streams_survive_a_save_and_are_keyed_only_by_what_is_kept() -> Result<(), String> {
        let send = |state: &mut CumulativeState, sum: f64, now: i64| -> Result<f64, String> {
            let extracted = extract(
                &request(
                    TOKEN_USAGE,
                    AggregationTemporality::Cumulative,
                    vec![point(chat(), sum, 1)],
                ),
                state,
                &[],
                now,
            )?;
            Ok(extracted.events.iter().map(|e| e.tokens.input).sum())
        };
        let mut state = CumulativeState::default();
        assert_eq!(send(&mut state, 1_000.0, NOW)?, 1_000.0);
        assert_eq!(send(&mut state, 1_500.0, NOW)?, 500.0);
        // A restart: the state goes through the saved form.
        let saved = serde_json::to_string(&state).map_err(|e| e.to_string())?;
        let mut state: CumulativeState = serde_json::from_str(&saved).map_err(|e| e.to_string())?;
        assert_eq!(send(&mut state, 1_600.0, NOW)?, 100.0);
        // A flood of streams that differ only in an attribute we drop adds no stream.
        for request_number in 0..11 {
            let points = (0..1_000)
                .map(|n| {
                    let mut attributes = chat();
                    attributes[1] = kv("gen_ai.request.model", "junk-model");
                    attributes.push(kv("junk", &format!("{request_number}-{n}")));
                    point(attributes, 1.0, 1)
                })
                .collect();
            extract(
                &request(TOKEN_USAGE, AggregationTemporality::Cumulative, points),
                &mut state,
                &[],
                NOW,
            )?;
        }
        assert_eq!(state.len(), 2);
        assert_eq!(send(&mut state, 1_700.0, NOW)?, 100.0);
        Ok(())
    }

    #[test]
    fn a_full_table_refuses_new_streams_rather_than_evict_a_live_one() -> Result<(), String> {
        let mut state = CumulativeState::default();
        let model = |n: usize| {
            let mut attributes = chat();
            attributes[1] = kv("gen_ai.request.model", &format!("m{n}"));
            attributes
        };
        let points = (0..MAX_STREAMS).map(|n| point(model(n), 10.0, 1)).collect();
        extract(
            &request(TOKEN_USAGE, AggregationTemporality::Cumulative, points),
            &mut state,
            &[],
            NOW,
        )?;
        let extra = extract(
            &request(
                TOKEN_USAGE,
                AggregationTemporality::Cumulative,
                vec![point(model(MAX_STREAMS), 10.0, 1)],
            ),
            &mut state,
            &[],
            NOW + 1_000,
        )?;
        assert_eq!((extra.refused_streams, extra.events.len()), (1, 0));
        // The first stream is still known: its next export counts only the increase.
        let again = extract(
            &request(
                TOKEN_USAGE,
                AggregationTemporality::Cumulative,
                vec![point(model(0), 15.0, 2)],
            ),
            &mut state,
            &[],
            NOW + 2_000,
        )?;
        assert_eq!(again.events[0].tokens.input, 5.0);
        // Once streams are no longer live, a new one takes the place of the oldest.
        let later = extract(
            &request(
                TOKEN_USAGE,
                AggregationTemporality::Cumulative,
                vec![point(model(MAX_STREAMS), 10.0, 1)],
            ),
            &mut state,
            &[],
            NOW + STREAM_LIVE_MS + 10_000,
        )?;
        assert_eq!((later.refused_streams, later.events.len()), (0, 1));
        Ok(())
    }
}
