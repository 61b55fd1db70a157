"""A small instrumented service for the docker-compose stack: it logs users in through the
identity provider's token endpoint about twice a second and exports a CLIENT span per call
(OpenTelemetry Python SDK, HTTP client semantic conventions) to authwatch over OTLP/HTTP.
"""
import json
import os
import random
import time
import urllib.error
import urllib.request

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

IDP = os.environ.get("IDP_URL", "http://idp:8080")
HOST = IDP.split("://", 1)[-1].split("/", 1)[0].split(":")[0]

provider = TracerProvider(resource=Resource.create({"service.name": "demo-checkout"}))
# OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://authwatch:4318) is read by the exporter.
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("demo-checkout")


def login(user):
    url = IDP + "/oauth/token"
    with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT) as span:
        span.set_attribute("http.request.method", "POST")
        span.set_attribute("url.full", url)
        span.set_attribute("server.address", HOST)
        body = json.dumps({"grant_type": "password", "username": user, "password": "x",
                           "client_id": "demo-checkout"}).encode()
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                span.set_attribute("http.response.status_code", resp.status)
        except urllib.error.HTTPError as e:
            span.set_attribute("http.response.status_code", e.code)
            span.set_attribute("error.type", str(e.code))
            try:
                span.set_attribute("oauth.error", json.loads(e.read()).get("error", ""))
            except ValueError:
                pass
            span.set_status(Status(StatusCode.ERROR))
        except OSError as e:
            span.set_attribute("error.type", type(e).__name__)
            span.set_status(Status(StatusCode.ERROR))


if __name__ == "__main__":
    print(f"Demo service calling {IDP}", flush=True)
    while True:
        login(f"user{random.randint(1, 50)}@example.com")
        time.sleep(0.5)
