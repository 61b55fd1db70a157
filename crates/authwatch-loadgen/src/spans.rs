//! Realistic identity-provider client spans: what an application's OpenTelemetry SDK exports for
//! its calls to Auth0 (and a few to Microsoft Entra ID), with the HTTP client semantic-convention
//! attributes, about 10% failures (6% 5xx, 4% 429) and a typical SDK resource.
//!
//! One request holds one resource (a service instance) and one instrumentation scope, as an SDK
//! batch exporter sends it. Deterministic for a seed, so benches and runs are comparable.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

const SERVICES: [&str; 8] = [
    "checkout",
    "accounts",
    "web-bff",
    "orders",
    "billing",
    "search",
    "profile",
    "admin-api",
];
const TENANTS: [&str; 4] = ["acme", "acme-staging", "globex", "initech"];

/// (method, path template); `{id}` becomes an Auth0 user id.
const AUTH0_CALLS: [(&str, &str); 6] = [
    ("POST", "/oauth/token"),
    ("POST", "/oauth/token"),
    ("GET", "/userinfo"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/api/v2/users/{id}"),
    ("POST", "/oauth/revoke"),
];

/// How many distinct values the cardinality-bearing attributes take; `0` keeps the realistic
/// default mix (4 Auth0 tenants, 6 Auth0 endpoints, one Entra ID endpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cardinality {
    /// Distinct `server.address` values (`t<i>.us.auth0.com`).
    pub hosts: usize,
    /// Distinct endpoints (`/api/v2/route<j>`, a path the `error_rate` connector keeps as it is).
    pub routes: usize,
}

/// A deterministic source of requests.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: u64,
    base_nanos: u64,
    cardinality: Cardinality,
    /// Spans generated so far (and the offset of the first): spreads hosts and routes evenly.
    counter: u64,
}

impl Generator {
    /// A generator whose spans start around now.
    pub fn new(seed: u64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Generator {
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            base_nanos: now,
            cardinality: Cardinality::default(),
            counter: 0,
        }
    }

    /// A generator whose spans call `cardinality.hosts` hosts and `cardinality.routes` routes,
    /// taken in turn starting at span number `offset` (so that consecutive generators cover
    /// every value before repeating one).
    pub fn with_cardinality(seed: u64, cardinality: Cardinality, offset: u64) -> Self {
        Generator {
            cardinality,
            counter: offset,
            ..Generator::new(seed)
        }
    }

    /// xorshift64*: small, fast, good enough for ids and choices.
    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits);
        while s.len() < digits {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(digits);
        s
    }

    /// One export request of `spans` client spans from one service instance.
    pub fn request(&mut self, spans: usize) -> ExportTraceServiceRequest {
        let service = SERVICES[self.below(SERVICES.len() as u64) as usize];
        let pod = format!("{service}-{}-{}", self.hex(10), self.hex(5));
        let resource = Resource {
            attributes: vec![
                kv("service.name", service),
                kv("service.version", "2.14.3"),
                kv("service.instance.id", &self.hex(32)),
                kv("deployment.environment.name", "production"),
                kv("host.name", &pod),
                kv("k8s.namespace.name", "shop"),
                kv("k8s.pod.name", &pod),
                kv("telemetry.sdk.name", "opentelemetry"),
                kv("telemetry.sdk.language", "rust"),
                kv("telemetry.sdk.version", "0.31.0"),
            ],
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        };
        let spans = (0..spans).map(|i| self.span(i as u64)).collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "reqwest-tracing".into(),
                        version: "0.5.8".into(),
                        attributes: Vec::new(),
                        dropped_attributes_count: 0,
                    }),
                    spans,
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
        }
    }

    fn span(&mut self, i: u64) -> Span {
        let n = self.counter;
        self.counter += 1;
        let Cardinality { hosts, routes } = self.cardinality;
        let (method, host, path) = if hosts > 0 || routes > 0 {
            let host = if hosts > 0 {
                // A stride coprime with most counts, so hosts and routes do not move in step.
                format!("t{}.us.auth0.com", n.wrapping_mul(7919) % hosts as u64)
            } else {
                format!(
                    "{}.us.auth0.com",
                    TENANTS[self.below(TENANTS.len() as u64) as usize]
                )
            };
            let path = if routes > 0 {
                format!("/api/v2/route{}", n % routes as u64)
            } else {
                AUTH0_CALLS[self.below(AUTH0_CALLS.len() as u64) as usize]
                    .1
                    .replace("{id}", "me")
            };
            ("GET", host, path)
        } else if self.below(10) == 0 {
            (
                "POST",
                "login.microsoftonline.com".to_string(),
                "/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token".to_string(),
            )
        } else {
            let tenant = TENANTS[self.below(TENANTS.len() as u64) as usize];
            let (method, template) = AUTH0_CALLS[self.below(AUTH0_CALLS.len() as u64) as usize];
            let path = template.replace("{id}", &format!("auth0|{}", self.hex(24)));
            (method, format!("{tenant}.us.auth0.com"), path)
        };
        let roll = self.below(100);
        let status: i64 = match roll {
            0..=3 => 503,
            4..=5 => 500,
            6..=9 => 429,
            _ if method == "POST" && path.ends_with("/revoke") => 204,
            _ => 200,
        };
        let start = self.base_nanos + i * 1_000_000 + self.below(1_000_000);
        let duration = 20_000_000 + self.below(280_000_000);
        let mut attributes = vec![
            kv("http.request.method", method),
            kv("server.address", &host),
            kv_int("server.port", 443),
            kv("url.full", &format!("https://{host}{path}")),
            kv("network.protocol.version", "1.1"),
            kv_int("http.response.status_code", status),
        ];
        let error = status >= 400;
        if error {
            attributes.push(kv("error.type", &status.to_string()));
        }
        let mut trace_id = Vec::with_capacity(16);
        trace_id.extend_from_slice(&self.next().to_be_bytes());
        trace_id.extend_from_slice(&self.next().to_be_bytes());
        Span {
            trace_id,
            span_id: self.next().to_be_bytes().to_vec(),
            trace_state: String::new(),
            parent_span_id: self.next().to_be_bytes().to_vec(),
            flags: 0x101,
            name: method.to_string(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes,
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Some(Status {
                message: String::new(),
                code: if error {
                    StatusCode::Error as i32
                } else {
                    StatusCode::Unset as i32
                },
            }),
        }
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// `n` different requests of `spans` spans each (seeds `0..n`): what the sender cycles through.
pub fn requests(n: usize, spans: usize) -> Vec<ExportTraceServiceRequest> {
    requests_with(n, spans, Cardinality::default())
}

/// [`requests`] with the given number of distinct hosts and routes, spread evenly over all the
/// spans (every value appears once `n * spans` reaches the count).
pub fn requests_with(
    n: usize,
    spans: usize,
    cardinality: Cardinality,
) -> Vec<ExportTraceServiceRequest> {
    (0..n as u64)
        .map(|seed| {
            Generator::with_cardinality(seed, cardinality, seed * spans as u64).request(spans)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn about_ten_percent_fail_with_5xx_or_429() {
        let req = Generator::new(3).request(5000);
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 5000);
        let failed = spans
            .iter()
            .filter(|s| matches!(attr(s, "http.response.status_code"), Some(Value::IntValue(c)) if *c == 429 || *c >= 500))
            .count();
        assert!((350..=650).contains(&failed), "{failed} of 5000 failed");
        let with_error_type = spans
            .iter()
            .filter(|s| attr(s, "error.type").is_some())
            .count();
        assert_eq!(failed, with_error_type);
        assert!(spans.iter().all(|s| s.kind == SpanKind::Client as i32));
    }

    #[test]
    fn cardinality_covers_every_host_and_route() {
        use std::collections::HashSet;
        let c = Cardinality {
            hosts: 100,
            routes: 1000,
        };
        let reqs = requests_with(4, 300, c);
        let (mut hosts, mut routes) = (HashSet::new(), HashSet::new());
        for s in reqs
            .iter()
            .flat_map(|r| &r.resource_spans[0].scope_spans[0].spans)
        {
            if let Some(Value::StringValue(h)) = attr(s, "server.address") {
                hosts.insert(h.clone());
            }
            if let Some(Value::StringValue(u)) = attr(s, "url.full") {
                routes.insert(u.rsplit('/').next().unwrap_or_default().to_string());
            }
        }
        assert_eq!(hosts.len(), 100);
        assert_eq!(routes.len(), 1000);
        assert!(routes.iter().all(|r| r.starts_with("route")));
        // Without it, the default mix: the four tenants and Entra ID.
        let d = requests_with(2, 500, Cardinality::default());
        let hosts: HashSet<String> = d
            .iter()
            .flat_map(|r| &r.resource_spans[0].scope_spans[0].spans)
            .filter_map(|s| match attr(s, "server.address") {
                Some(Value::StringValue(h)) => Some(h.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(hosts.len(), TENANTS.len() + 1, "{hosts:?}");
    }

    #[test]
    fn deterministic_and_about_the_size_of_real_spans() {
        let a = Generator::new(11).request(512).encode_to_vec();
        let b = Generator::new(11).request(512).encode_to_vec();
        assert_eq!(a.len(), b.len());
        let per_span = a.len() / 512;
        assert!((200..=400).contains(&per_span), "{per_span} bytes per span");
    }
}
