//! OTLP/HTTP metrics (protobuf or JSON) carrying the OpenTelemetry GenAI semantic conventions:
//! `gen_ai.client.token.usage` (tokens by `gen_ai.token.type`) and
//! `gen_ai.client.operation.duration` (requests and latency), turned into usage events.
//!
//! SDKs export cumulative histograms by default, so each stream's previous sum and count are
//! kept and only the increase since the last export is recorded; a new start time or a smaller
//! sum means the client restarted, and the whole value counts.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, HistogramDataPoint, metric};
use prost::Message;

use super::ledger::UsageEvent;
use super::pricing::Tokens;

pub const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
pub const OPERATION_DURATION: &str = "gen_ai.client.operation.duration";

/// Streams remembered for cumulative-to-delta conversion; the oldest are dropped past this.
const MAX_STREAMS: usize = 10_000;

/// Decodes a request body by content type.
pub fn decode(body: &[u8], json: bool) -> Result<ExportMetricsServiceRequest, String> {
    if json {
        serde_json::from_slice(body).map_err(|e| format!("invalid OTLP JSON: {e}"))
    } else {
        ExportMetricsServiceRequest::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}"))
    }
}

/// Previous cumulative values per stream.
#[derive(Debug, Default)]
pub struct CumulativeState {
    streams: HashMap<String, (u64, f64, u64, Vec<u64>)>,
    order: Vec<String>,
}

/// What one export request contained.
#[derive(Debug, Default)]
pub struct Extracted {
    pub events: Vec<UsageEvent>,
    /// Data points of GenAI metrics read.
    pub points: usize,
}

/// Turns the GenAI metrics of a request into usage events (deltas). Other metrics are ignored.
pub fn extract(
    request: &ExportMetricsServiceRequest,
    state: &mut CumulativeState,
    allowed_labels: &[String],
) -> Extracted {
    let mut out = Extracted::default();
    for resource_metrics in &request.resource_metrics {
        let resource_attributes = resource_metrics
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        for scope_metrics in &resource_metrics.scope_metrics {
            for metric in &scope_metrics.metrics {
                if metric.name != TOKEN_USAGE && metric.name != OPERATION_DURATION {
                    continue;
                }
                let Some(metric::Data::Histogram(histogram)) = &metric.data else {
                    continue;
                };
                let cumulative =
                    histogram.aggregation_temporality == AggregationTemporality::Cumulative as i32;
                for point in &histogram.data_points {
                    out.points += 1;
                    let attributes = attributes_of(resource_attributes, &point.attributes);
                    let stream = format!("{}|{:?}", metric.name, attributes);
                    let (sum, count, buckets) = if cumulative {
                        state.delta(&stream, point)
                    } else {
                        (
                            point.sum.unwrap_or(0.0),
                            point.count,
                            point.bucket_counts.clone(),
                        )
                    };
                    if count == 0 && sum == 0.0 {
                        continue;
                    }
                    let mut event = UsageEvent {
                        provider: attributes
                            .get("gen_ai.provider.name")
                            .or_else(|| attributes.get("gen_ai.system"))
                            .cloned()
                            .unwrap_or_else(|| "unknown".into()),
                        model: attributes
                            .get("gen_ai.response.model")
                            .or_else(|| attributes.get("gen_ai.request.model"))
                            .cloned()
                            .unwrap_or_else(|| "unknown".into()),
                        labels: attributes
                            .iter()
                            .filter(|(k, _)| allowed_labels.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        ..UsageEvent::default()
                    };
                    if metric.name == TOKEN_USAGE {
                        match attributes.get("gen_ai.token.type").map(String::as_str) {
                            Some("input") => {
                                event.tokens = Tokens {
                                    input: sum,
                                    ..Tokens::default()
                                }
                            }
                            Some("output") => {
                                event.tokens = Tokens {
                                    output: sum,
                                    ..Tokens::default()
                                }
                            }
                            // Not in the conventions yet; some instrumentations send it.
                            Some("cached" | "cache_read") => {
                                event.tokens = Tokens {
                                    cached: sum,
                                    input: sum,
                                    ..Tokens::default()
                                }
                            }
                            _ => continue,
                        }
                        out.events.push(event);
                    } else {
                        // One duration point per request: the count is requests, and the
                        // histogram's mean stands for each of them in our latency histogram.
                        event.requests = count as f64;
                        let mean = if count > 0 { sum / count as f64 } else { 0.0 };
                        let _ = buckets;
                        for _ in 0..count.min(10_000) {
                            let mut one = event.clone();
                            one.requests = 1.0;
                            one.latency_seconds = Some(mean);
                            out.events.push(one);
                        }
                    }
                }
            }
        }
    }
    out
}

impl CumulativeState {
    fn delta(&mut self, stream: &str, point: &HistogramDataPoint) -> (f64, u64, Vec<u64>) {
        let sum = point.sum.unwrap_or(0.0);
        let current = (
            point.start_time_unix_nano,
            sum,
            point.count,
            point.bucket_counts.clone(),
        );
        let delta = match self.streams.get(stream) {
            Some((start, previous_sum, previous_count, previous_buckets))
                if *start == point.start_time_unix_nano
                    && sum >= *previous_sum
                    && point.count >= *previous_count =>
            {
                let buckets = point
                    .bucket_counts
                    .iter()
                    .zip(previous_buckets.iter().chain(std::iter::repeat(&0)))
                    .map(|(a, b)| a.saturating_sub(*b))
                    .collect();
                (sum - previous_sum, point.count - previous_count, buckets)
            }
            _ => (sum, point.count, point.bucket_counts.clone()),
        };
        if self.streams.insert(stream.to_string(), current).is_none() {
            self.order.push(stream.to_string());
            if self.order.len() > MAX_STREAMS {
                let oldest = self.order.remove(0);
                self.streams.remove(&oldest);
            }
        }
        delta
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

    #[test]
    fn cumulative_json_points_become_deltas() -> Result<(), String> {
        let mut state = CumulativeState::default();
        let allowed = vec!["feature".to_string()];
        let first = extract(
            &decode(json_request(100.0, 2, "1").as_bytes(), true)?,
            &mut state,
            &allowed,
        );
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
        );
        assert_eq!(second.events[0].tokens.input, 150.0);
        // Same totals again: nothing new.
        assert!(
            extract(
                &decode(json_request(250.0, 5, "1").as_bytes(), true)?,
                &mut state,
                &allowed
            )
            .events
            .is_empty()
        );
        // A restarted client (new start time) counts whole.
        let restarted = extract(
            &decode(json_request(40.0, 1, "2").as_bytes(), true)?,
            &mut state,
            &allowed,
        );
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
}
