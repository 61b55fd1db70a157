use authwatch_core::config::REDACTED;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use authwatch_core::otlp::metrics::v1::metric::Data;
use authwatch_core::otlp::trace::v1::span::Event;
use authwatch_core::registry::decode_config;
use authwatch_core::{PipelineId, Settings, SignalKind};
use authwatch_testkit::{kv, kv_int, logs, metrics, traces, Sink};

use super::rules::{Counts, Redactor};
use super::*;

const JWT: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("redaction");
}

#[test]
fn decodes_every_option_and_refuses_bad_patterns() {
    let c: Config = decode_config(serde_json::json!({
        "action": "hash",
        "blocked_keys": ["authorization", "x-secret"],
        "allowed_keys": ["http.request.header.cookie"],
        "blocked_query_params": ["sig"],
        "blocked_values": ["4[0-9]{15}"]
    }))
    .unwrap();
    assert_eq!(c.action, Action::Hash);
    assert_eq!(c.blocked_keys, ["authorization", "x-secret"]);
    assert_eq!(c.blocked_values[0].as_str(), "4[0-9]{15}");

    let e = decode_config::<Config>(serde_json::json!({ "blocked_values": ["(unclosed"] }))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("blocked_values[0]: invalid regular expression")
            || e.starts_with("blocked_values::0: invalid regular expression"),
        "{e}"
    );
    let e = decode_config::<Config>(serde_json::json!({ "blocked_values": ["a*"] }))
        .unwrap_err()
        .to_string();
    assert!(e.contains("matches the empty string"), "{e}");
    let e = decode_config::<Config>(serde_json::json!({ "action": "drop" }))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown variant `drop`"), "{e}");
}

fn redactor() -> Redactor {
    Redactor::new(&Config::default()).unwrap()
}

fn text(r: &Redactor, s: &str) -> (String, Counts) {
    let mut c = Counts::default();
    let out = r.text(s, &mut c).unwrap_or_else(|| s.to_owned());
    (out, c)
}

fn str_value(v: &Option<AnyValue>) -> &str {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s,
        other => panic!("not a string: {other:?}"),
    }
}

#[test]
fn blocked_keys_match_exactly_or_as_a_suffix() {
    let r = redactor();
    for key in [
        "authorization",
        "Authorization",
        "http.request.header.authorization",
        "http.request.header.proxy-authorization",
        "http.request.header.cookie",
        "http.response.header.set-cookie",
        "cookie",
        "password",
        "db.password",
        "user_password",
        "client_secret",
        "oauth.client_secret",
        "access_token",
        "id_token",
        "refresh_token",
        "api_key",
        "http.request.header.x-api-key",
        "API-KEY",
    ] {
        assert!(r.key_is_blocked(key), "{key}");
    }
    for key in [
        "service.name",
        "http.request.method",
        "url.full",
        "password_policy",
        "passwordless",
        "token_type",
        "cookies_enabled_count",
        "http.response.status_code",
        "authorization_server",
        "enduser.id",
    ] {
        assert!(!r.key_is_blocked(key), "{key}");
    }
}

#[test]
fn blocked_key_values_are_masked_or_hashed_and_counted() {
    let mut attrs = vec![
        kv("http.request.header.authorization", "Bearer abc.def.ghi"),
        kv("http.request.header.cookie", "session=s3cr3t; theme=dark"),
        kv_int("db.password", 1234),
        kv("client_secret", ""),
        kv("service.name", "checkout"),
        KeyValue {
            key: "user.has_password".into(),
            value: Some(AnyValue {
                value: Some(Value::BoolValue(true)),
            }),
            ..Default::default()
        },
    ];
    let mut c = Counts::default();
    redactor().attributes(&mut attrs, &mut c);
    assert_eq!(str_value(&attrs[0].value), REDACTED);
    assert_eq!(str_value(&attrs[1].value), REDACTED);
    assert_eq!(str_value(&attrs[2].value), REDACTED);
    assert_eq!(
        str_value(&attrs[3].value),
        "",
        "nothing to hide in an empty value"
    );
    assert_eq!(str_value(&attrs[4].value), "checkout");
    assert!(matches!(
        attrs[5].value.as_ref().unwrap().value,
        Some(Value::BoolValue(true))
    ));
    assert_eq!(c.key, 3);

    // Hash: stable, correlatable, not the secret.
    let hashing = Redactor::new(&Config {
        action: Action::Hash,
        ..Config::default()
    })
    .unwrap();
    let mut a = vec![kv("authorization", "Bearer s3cr3t")];
    let mut b = vec![kv("authorization", "Bearer s3cr3t")];
    let mut other = vec![kv("authorization", "Bearer 0ther")];
    let mut c = Counts::default();
    hashing.attributes(&mut a, &mut c);
    hashing.attributes(&mut b, &mut c);
    hashing.attributes(&mut other, &mut c);
    let h = str_value(&a[0].value);
    assert!(h.starts_with("sha256:") && h.len() == 23, "{h}");
    assert_eq!(h, str_value(&b[0].value));
    assert_ne!(h, str_value(&other[0].value));
    assert!(!h.contains("s3cr3t"));
}

#[test]
fn allowed_keys_are_kept_as_they_are() {
    let r = Redactor::new(&Config {
        allowed_keys: vec!["http.request.header.cookie".into(), "debug.url".into()],
        ..Config::default()
    })
    .unwrap();
    let mut attrs = vec![
        kv("http.request.header.cookie", "theme=dark"),
        kv("debug.url", "https://x/cb?code=kept"),
        kv("url.full", "https://x/cb?code=gone"),
    ];
    let mut c = Counts::default();
    r.attributes(&mut attrs, &mut c);
    assert_eq!(str_value(&attrs[0].value), "theme=dark");
    assert_eq!(str_value(&attrs[1].value), "https://x/cb?code=kept");
    assert_eq!(str_value(&attrs[2].value), "https://x/cb?code=[REDACTED]");
}

#[test]
fn query_parameters_lose_their_values_only() {
    let r = redactor();
    let cases = [
        (
            "https://idp.example.com/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj",
            "https://idp.example.com/callback?code=[REDACTED]&state=af0ifjsldkj",
            1,
        ),
        (
            "https://api.example.com/v1/users?access_token=abc123&page=2&id_token=xyz#top",
            "https://api.example.com/v1/users?access_token=[REDACTED]&page=2&id_token=[REDACTED]#top",
            2,
        ),
        (
            "https://app.example.com/cb#access_token=abc&token_type=Bearer&expires_in=3600",
            "https://app.example.com/cb#access_token=[REDACTED]&token_type=Bearer&expires_in=3600",
            1,
        ),
        // `url.query` and form bodies: no `?`.
        (
            "grant_type=client_credentials&client_id=app&client_secret=sh%2Fh",
            "grant_type=client_credentials&client_id=app&client_secret=[REDACTED]",
            1,
        ),
        ("Password=hunter2", "Password=[REDACTED]", 1),
        (
            "GET /login?refresh_token=r1 HTTP/1.1",
            "GET /login?refresh_token=[REDACTED] HTTP/1.1",
            1,
        ),
        ("https://x/cb?token=&a=1", "https://x/cb?token=&a=1", 0),
    ];
    for (input, want, n) in cases {
        let (got, c) = text(&r, input);
        assert_eq!(got, want);
        assert_eq!(c.query, n, "{input}");
    }
}

#[test]
fn jwts_are_found_anywhere() {
    let r = redactor();
    let (got, c) = text(&r, &format!("user logged in with {JWT} from 10.0.0.1"));
    assert_eq!(got, "user logged in with [REDACTED] from 10.0.0.1");
    assert_eq!(c.jwt, 1);
    // Inside JSON, in a header value, twice.
    let (got, c) = text(&r, &format!(r#"{{"t":"{JWT}","u":"{JWT}"}}"#));
    assert!(!got.contains("eyJ"), "{got}");
    assert_eq!(c.jwt, 2);
    // Unsigned (alg none) tokens too.
    let (got, _) = text(&r, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
    assert_eq!(got, REDACTED);
}

#[test]
fn bearer_and_basic_credentials_keep_their_scheme() {
    let r = redactor();
    let (got, c) = text(
        &r,
        "sent Authorization: Bearer 2YotnFZFEjr1zCsicMWpAA to upstream",
    );
    assert_eq!(got, "sent Authorization: Bearer [REDACTED] to upstream");
    assert_eq!(c.credential, 1);
    let (got, c) = text(&r, "basic dXNlcjpwYXNzd29yZA==");
    assert_eq!(got, "basic [REDACTED]");
    assert_eq!(c.credential, 1);
    // Words are not credentials.
    for plain in [
        "Basic authentication failed for user",
        "Basic Authentication failed",
        "bearer token expired",
        "the bearer tokens were rotated",
    ] {
        assert_eq!(text(&r, plain), (plain.to_owned(), Counts::default()));
    }
}

#[test]
fn json_fields_of_blocked_keys() {
    let r = redactor();
    let (got, c) = text(
        &r,
        r#"{"client_id":"app","client_secret": "s3cr3t\"x","Password":"p","nested":{"db.password":"q"}}"#,
    );
    assert_eq!(
        got,
        r#"{"client_id":"app","client_secret": "[REDACTED]","Password":"[REDACTED]","nested":{"db.password":"[REDACTED]"}}"#
    );
    assert_eq!(c.json, 3);
}

#[test]
fn blocked_values_patterns() {
    let r = Redactor::new(&Config {
        blocked_values: vec![
            "4[0-9]{15}".parse().unwrap(),
            "(?i)sk_live_[a-z0-9]+".parse().unwrap(),
        ],
        ..Config::default()
    })
    .unwrap();
    let (got, c) = text(&r, "card 4111111111111111 key SK_LIVE_abc123 ok");
    assert_eq!(got, "card [REDACTED] key [REDACTED] ok");
    assert_eq!(c.value, 2);
}

#[test]
fn ordinary_values_are_untouched() {
    let r = redactor();
    for plain in [
        "GET /api/v1/users/{id}",
        "checkout-service",
        "https://idp.example.com/authorize?client_id=app&response_type=code&scope=openid%20profile",
        "https://example.com/search?q=password+reset&lang=en",
        "https://example.com/oauth/token",
        "exit code=1",
        "SELECT * FROM users WHERE id = ?",
        "user 42 changed their password",
        "error_code=invalid_grant",
        "the token endpoint returned 400",
        "eyJ is how a JWT header starts",
        r#"{"status":"ok","count":3}"#,
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        "",
    ] {
        assert_eq!(
            text(&r, plain),
            (plain.to_owned(), Counts::default()),
            "{plain}"
        );
    }
}

#[test]
fn every_place_in_traces_is_covered() {
    let mut req = traces(0, 1);
    let rs = &mut req.resource_spans[0];
    rs.resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("deployment.api_key", "k-123"));
    let span = &mut rs.scope_spans[0].spans[0];
    let before_name = span.name.clone();
    span.attributes.push(kv(
        "url.full",
        "https://h.example.com/p?access_token=t0k&x=1",
    ));
    span.attributes.push(KeyValue {
        key: "http.request.headers".into(),
        value: Some(AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("authorization", "Basic dXNlcjpwYXNz")],
            })),
        }),
        ..Default::default()
    });
    span.attributes.push(KeyValue {
        key: "tokens".into(),
        value: Some(AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(Value::StringValue(JWT.into())),
                }],
            })),
        }),
        ..Default::default()
    });
    span.events.push(Event {
        name: "exception".into(),
        attributes: vec![kv("exception.message", &format!("bad token {JWT}"))],
        ..Default::default()
    });
    span.status = Some(authwatch_core::otlp::trace::v1::Status {
        message: "refresh_token=r3fresh rejected".into(),
        code: 2,
    });
    let mut c = Counts::default();
    redactor().traces(&mut req, &mut c);
    let text = format!("{req:?}");
    for secret in ["k-123", "t0k", "dXNlcjpwYXNz", "eyJ", "r3fresh"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("https://h.example.com/p?access_token=[REDACTED]&x=1"));
    assert_eq!(
        req.resource_spans[0].scope_spans[0].spans[0].name,
        before_name
    );
    assert_eq!(
        c,
        Counts {
            key: 2,
            query: 2,
            jwt: 2,
            ..Counts::default()
        }
    );
}

#[test]
fn logs_bodies_and_metric_attributes_are_covered() {
    let mut l = logs(0, 1);
    let rec = &mut l.resource_logs[0].scope_logs[0].log_records[0];
    rec.body = Some(AnyValue {
        value: Some(Value::StringValue(format!(
            "POST /oauth/token client_secret=abc id_token {JWT}"
        ))),
    });
    rec.attributes
        .push(kv("http.request.header.cookie", "sid=1"));
    let mut c = Counts::default();
    redactor().logs(&mut l, &mut c);
    let text = format!("{l:?}");
    assert!(!text.contains("eyJ") && !text.contains("sid=1"), "{text}");
    assert_eq!((c.key, c.jwt), (1, 1));

    let mut m = metrics(0, 1);
    let metric = &mut m.resource_metrics[0].scope_metrics[0].metrics[0];
    match &mut metric.data {
        Some(Data::Sum(s)) => s.data_points[0]
            .attributes
            .push(kv("url.full", "https://x/?code=c0de")),
        Some(Data::Gauge(g)) => g.data_points[0]
            .attributes
            .push(kv("url.full", "https://x/?code=c0de")),
        other => panic!("unexpected test metric {other:?}"),
    }
    let mut c = Counts::default();
    redactor().metrics(&mut m, &mut c);
    assert!(!format!("{m:?}").contains("c0de"));
    assert_eq!(c.query, 1);
}

/// A default `redaction` processor of pipeline `traces` feeding `sink`, and its telemetry.
pub(super) async fn processor(sink: &Sink) -> (Built, authwatch_core::telemetry::Telemetry) {
    let settings = Settings::new("redaction".parse().unwrap());
    let telemetry = settings.telemetry.clone();
    let built = Config::default()
        .build(ProcessorContext {
            settings,
            pipeline: "traces".parse::<PipelineId>().unwrap(),
            next: sink.shared(),
        })
        .await
        .unwrap();
    (built, telemetry)
}

#[tokio::test]
async fn the_processor_redacts_counts_and_forwards() {
    let sink = Sink::new();
    let (built, telemetry) = processor(&sink).await;
    let mut req = traces(0, 2);
    req.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv("http.request.header.authorization", "Bearer x"));
    req.resource_spans[0].scope_spans[0].spans[1]
        .attributes
        .push(kv("url.full", "https://h/?code=a&token=b"));
    built.consumer.consume(Signal::Traces(req)).await.unwrap();
    assert_eq!(sink.item_count(SignalKind::Traces), 2);
    assert!(!format!("{:?}", sink.received()).contains("Bearer x"));
    let text = telemetry.encode();
    assert!(
        text.contains(
            r#"authwatch_processor_redactions_total{processor="redaction",pipeline="traces",rule="key"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"authwatch_processor_redactions_total{processor="redaction",pipeline="traces",rule="query"} 2"#
    ));
}

/// A hostile string costs the prefilter a few scans, not one per special byte: 4 MiB of quotes
/// without a colon (one scan for the colon per quote would be 4M scans of 4 MiB, which this test
/// would not live to see) and of `=` and `ey` without a query rule's match.
#[test]
fn the_prefilter_is_linear_on_hostile_strings() {
    let r = Redactor::new(&Config::default()).unwrap();
    for unit in ["\"", "\"'", "eyey", "bb"] {
        let s = unit.repeat((4 << 20) / unit.len());
        assert!(!r.might_redact(s.as_bytes()), "{unit:?}");
    }
    assert!(r.might_redact(format!("{}:", "\"".repeat(4 << 20)).as_bytes()));
}

/// The prefilter may only skip strings no rule would change: `might_redact == false` must mean
/// `text == None`, for every cut of strings that hold each kind of secret.
#[test]
fn the_prefilter_never_skips_a_secret() {
    let hash: Config = decode_config(serde_json::json!({ "action": "hash" })).unwrap();
    let with_values: Config =
        decode_config(serde_json::json!({ "blocked_values": ["4[0-9]{15}"] })).unwrap();
    let samples = [
        format!("see https://h/cb?code=abc&state=1 and {JWT}"),
        r#"{"client_secret" : "s3cr3t", "Authorization":"Bearer abcdefgh1234"}"#.to_owned(),
        "BEARER ABCDEFGH.1234 Basic dXNlcjpwYXNz token=t card 4111111111111111".to_owned(),
        "plain words: nothing here, bearer of news, basic".to_owned(),
    ];
    for config in [Config::default(), hash, with_values] {
        let r = Redactor::new(&config).unwrap();
        let mut hits = 0;
        for s in &samples {
            for start in 0..s.len() {
                for end in start..=s.len() {
                    let Some(cut) = s.get(start..end) else { continue };
                    if r.might_redact(cut.as_bytes()) {
                        hits += 1;
                    } else {
                        assert_eq!(r.text(cut, &mut Counts::default()), None, "skipped {cut:?}");
                    }
                }
            }
        }
        assert!(hits > 1000, "{hits}");
    }
}
