"""Sends GenAI token usage to prismwatch with the real OpenTelemetry Python SDK and its OTLP/HTTP
exporter (protobuf), as an instrumented application would. Exports twice, cumulatively, so the
receiver must turn cumulative histograms into deltas.

usage: otel_genai_client.py ENDPOINT TOKEN
"""

import sys

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

endpoint, token = sys.argv[1], sys.argv[2]
exporter = OTLPMetricExporter(endpoint=endpoint, headers={"Authorization": f"Bearer {token}"})
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
provider = MeterProvider(resource=Resource.create({"service.name": "chat-api"}), metric_readers=[reader])
meter = provider.get_meter("genai-test")
usage = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")


def call(model, input_tokens, output_tokens, seconds, feature):
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "feature": feature,
    }
    usage.record(input_tokens, {**attributes, "gen_ai.token.type": "input"})
    usage.record(output_tokens, {**attributes, "gen_ai.token.type": "output"})
    duration.record(seconds, attributes)


# First export: 3 calls.
call("gemini-2.5-flash", 1200, 300, 0.8, "chat")
call("gemini-2.5-flash", 800, 200, 1.2, "chat")
call("gemini-2.5-pro", 5000, 1000, 3.5, "search")
assert reader.force_flush(timeout_millis=10_000)
# Second export (cumulative totals grow): 1 more call.
call("gemini-2.5-flash", 1000, 500, 0.5, "chat")
assert reader.force_flush(timeout_millis=10_000)
provider.shutdown()
print("sent")
