//! Config: the YAML, defaults, which protocols are on, invalid configs, URL paths.

use super::*;

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("otlp");
}

#[test]
fn config_yaml_decodes() {
    let got = decode(include_str!("../testdata/config.yaml")).unwrap();
    let want = Config {
        protocols: Protocols {
            grpc: Some(GrpcConfig {
                endpoint: "0.0.0.0:14317".parse().unwrap(),
                max_recv_msg_size_mib: Positive(16),
                max_concurrent_streams: NonZeroU32::new(64),
                max_connections: Positive(100),
                max_requests_in_flight: Some(Positive(32)),
                stream_window_kib: Positive(1024),
                timeout: Duration::from_secs(10),
                keepalive: KeepaliveConfig {
                    server_parameters: KeepaliveServerParameters {
                        time: Duration::from_secs(60),
                        timeout: Duration::from_secs(5),
                        max_connection_age: Some(Duration::from_secs(3600)),
                        max_connection_age_grace: Some(Duration::from_secs(30)),
                    },
                },
                tls: Some(TlsServerConfig {
                    cert_file: "/etc/authwatch/server.crt".into(),
                    key_file: "/etc/authwatch/server.key".into(),
                    client_ca_file: Some("/etc/authwatch/clients-ca.crt".into()),
                }),
                auth: None,
            }),
            http: Some(HttpConfig {
                endpoint: ListenAddr::localhost(14318),
                traces_url_path: "/otlp/v1/traces".parse().unwrap(),
                metrics_url_path: "/otlp/v1/metrics".parse().unwrap(),
                logs_url_path: "/otlp/v1/logs".parse().unwrap(),
                max_request_body_size: Positive(1024 * 1024),
                read_header_timeout: Duration::from_secs(5),
                read_timeout: Duration::from_secs(20),
                idle_timeout: Duration::from_secs(120),
                max_connections: Positive(200),
                max_requests_in_flight: None,
                tls: None,
                auth: None,
                cors: Some(CorsConfig {
                    allowed_origins: vec![
                        "https://app.example.com".into(),
                        "https://*.example.com".into(),
                    ],
                    allowed_headers: vec!["x-tenant".into(), "Content-Encoding".into()],
                    exposed_headers: vec!["retry-after".into()],
                    max_age: 7200,
                }),
            }),
        },
    };
    assert_eq!(got, want);
    assert!(validate(&got).is_empty());
    assert_eq!(
        got.resources(),
        vec![
            Resource::Listen("0.0.0.0:14317".parse().unwrap()),
            Resource::Listen("127.0.0.1:14318".parse().unwrap()),
        ]
    );
}

#[test]
fn defaults_match_the_collector() {
    let c = Config::default();
    let grpc = c.protocols.grpc.clone().unwrap();
    let http = c.protocols.http.clone().unwrap();
    assert_eq!(grpc.endpoint.to_string(), "127.0.0.1:4317");
    assert_eq!(grpc.max_recv_msg_size(), 4 * 1024 * 1024);
    assert_eq!(grpc.max_concurrent_streams, None);
    assert_eq!(http.endpoint.to_string(), "127.0.0.1:4318");
    assert_eq!(http.traces_url_path.as_str(), "/v1/traces");
    assert_eq!(http.metrics_url_path.as_str(), "/v1/metrics");
    assert_eq!(http.logs_url_path.as_str(), "/v1/logs");
    assert_eq!(http.max_request_body_size.get(), 20_971_520);
    assert_eq!(c.signals(), Signals::ALL);
    assert_eq!(
        c.resources(),
        vec![
            Resource::Listen("127.0.0.1:4317".parse().unwrap()),
            Resource::Listen("127.0.0.1:4318".parse().unwrap()),
        ]
    );
}

#[test]
fn a_protocol_is_on_only_when_listed() {
    // (YAML, gRPC on, HTTP on)
    let cases = [
        ("{}", true, true),
        ("", true, true),
        ("protocols: { grpc: }", true, false),
        ("protocols:\n  grpc:\n", true, false),
        ("protocols: { http: }", false, true),
        ("protocols: { grpc: {}, http: {} }", true, true),
        (
            "protocols: { http: { endpoint: '127.0.0.1:9999' } }",
            false,
            true,
        ),
    ];
    for (text, grpc, http) in cases {
        let c = decode(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(c.protocols.grpc.is_some(), grpc, "{text:?}");
        assert_eq!(c.protocols.http.is_some(), http, "{text:?}");
        assert!(validate(&c).is_empty(), "{text:?}: {:?}", validate(&c));
        assert_eq!(c.resources().len(), usize::from(grpc) + usize::from(http));
    }
    // `grpc:` with no value means the defaults.
    let c = decode("protocols: { grpc: }").unwrap();
    assert_eq!(c.protocols.grpc, Some(GrpcConfig::default()));
    assert_eq!(decode("{}").unwrap(), Config::default());
}

#[derive(serde::Deserialize)]
struct InvalidCase {
    config: serde_json::Value,
    error: String,
}

#[test]
fn invalid_configs() {
    let cases: BTreeMap<String, InvalidCase> =
        serde_yaml::from_str(include_str!("../testdata/invalid.yaml")).unwrap();
    assert!(cases.len() >= 10);
    for (name, case) in cases {
        let got = match decode_config::<Config>(case.config) {
            Err(e) => e.to_string(),
            Ok(c) => validate(&c).join("\n"),
        };
        assert_eq!(got, case.error, "case `{name}`");
    }
}

#[test]
fn config_round_trips_through_its_serialized_form() {
    let grpc_only = decode("protocols: { grpc: { max_concurrent_streams: 8 } }").unwrap();
    for c in [
        Config::default(),
        grpc_only,
        decode(include_str!("../testdata/config.yaml")).unwrap(),
    ] {
        let value = serde_json::to_value(&c).unwrap();
        assert_eq!(
            decode_config::<Config>(value.clone()).unwrap(),
            c,
            "{value}"
        );
    }
}

#[test]
fn url_paths_get_a_leading_slash() {
    assert_eq!("v1/x".parse::<UrlPath>().unwrap().as_str(), "/v1/x");
    assert_eq!(" /v1/x ".parse::<UrlPath>().unwrap().as_str(), "/v1/x");
    assert!("/a b".parse::<UrlPath>().is_err());
    assert!("/a#b".parse::<UrlPath>().is_err());
    assert!("/é".parse::<UrlPath>().is_err());
}

#[test]
fn the_in_flight_limit_defaults_to_four_per_core() {
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(super::in_flight_limit(None), 4 * cores);
    assert_eq!(default_max_requests_in_flight(), 4 * cores);
    assert_eq!(super::in_flight_limit(Some(Positive(3))), 3);
}
