// A browser app instrumented with the OpenTelemetry JavaScript SDK: it records the client spans
// of calls it makes to its identity provider and exports them over OTLP/HTTP (JSON) to authwatch,
// cross-origin, so the browser sends a CORS preflight first.
//
// Query parameters: `otlp` (the traces URL, e.g. http://127.0.0.1:4318/v1/traces), `service`
// (service.name), `spans` (how many, default 10; every third one a 503).
// The outcome is written to <pre id="result">: `exported N spans: SUCCESS` or `export failed: ...`.
import { SpanKind } from '@opentelemetry/api';
import { WebTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-web';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  ATTR_SERVICE_NAME,
  ATTR_SERVER_ADDRESS,
  ATTR_URL_FULL,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
} from '@opentelemetry/semantic-conventions';

const params = new URLSearchParams(window.location.search);
const result = document.getElementById('result');
const show = (text) => { result.textContent = text; };

// Records what the exporter reports, so the page can say whether authwatch took the spans.
class RecordingExporter {
  constructor(inner) { this.inner = inner; this.exported = 0; this.errors = []; }
  export(spans, done) {
    this.inner.export(spans, (r) => {
      if (r.code === 0) { this.exported += spans.length; } else { this.errors.push(String(r.error)); }
      done(r);
    });
  }
  shutdown() { return this.inner.shutdown(); }
  forceFlush() { return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve(); }
}

async function main() {
  const exporter = new RecordingExporter(new OTLPTraceExporter({
    url: params.get('otlp'),
    // A custom header, allowed by `cors.allowed_headers` in the test's config.
    headers: { 'x-tenant': 'browser-test' },
  }));
  const provider = new WebTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: params.get('service') || 'browser-app' }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('authwatch-browser-fixture', '1.0.0');
  const n = Number(params.get('spans') || 10);
  for (let i = 0; i < n; i++) {
    const span = tracer.startSpan('POST', {
      kind: SpanKind.CLIENT,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: 'POST',
        [ATTR_SERVER_ADDRESS]: 'tenant.us.auth0.com',
        [ATTR_URL_FULL]: 'https://tenant.us.auth0.com/oauth/token',
        [ATTR_HTTP_RESPONSE_STATUS_CODE]: i % 3 === 0 ? 503 : 200,
        'test.index': i,
      },
    });
    span.end();
  }
  await provider.forceFlush();
  show(exporter.errors.length === 0 && exporter.exported === n
    ? `exported ${exporter.exported} spans: SUCCESS`
    : `export failed: exported ${exporter.exported} of ${n}; ${exporter.errors.join('; ')}`);
}

main().catch((e) => show(`export failed: ${e}`));
