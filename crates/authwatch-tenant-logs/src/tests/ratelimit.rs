use http::HeaderValue;

use super::*;

fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.insert(*k, HeaderValue::from_static(v));
    }
    m
}

#[test]
fn reads_auth0_and_okta_headers() {
    let auth0 = h(&[
        ("x-ratelimit-limit", "10"),
        ("x-ratelimit-remaining", " 7"),
        ("x-ratelimit-reset", "1700000000"),
    ]);
    assert_eq!(
        RateLimit::from_headers(&auth0),
        RateLimit {
            limit: Some(10),
            remaining: Some(7),
            reset: Some(1_700_000_000)
        }
    );
    let okta = h(&[
        ("X-Rate-Limit-Limit", "600"),
        ("X-Rate-Limit-Remaining", "599"),
        ("X-Rate-Limit-Reset", "1700000060"),
    ]);
    let rl = RateLimit::from_headers(&okta);
    assert_eq!(rl.limit, Some(600));
    assert_eq!(rl.headroom(), Some(599.0 / 600.0));
    let junk = h(&[
        ("x-ratelimit-limit", "-1"),
        ("x-ratelimit-remaining", "many"),
    ]);
    assert!(RateLimit::from_headers(&junk).is_empty());
    assert_eq!(RateLimit::from_headers(&junk).headroom(), None);
    let zero = RateLimit {
        limit: Some(0),
        remaining: Some(0),
        reset: None,
    };
    assert_eq!(zero.headroom(), None);
}

#[tokio::test(start_paused = true)]
async fn spaces_requests_by_the_share_of_the_rate() {
    // Free tenant: 2 requests/s; half of it is one request a second.
    let mut p = Pacer::new(0.5, 2.0);
    assert_eq!(p.gap(), Duration::from_secs(1));
    let t0 = Instant::now();
    p.ready().await;
    p.ready().await;
    p.ready().await;
    assert_eq!(Instant::now() - t0, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn waits_for_the_reset_when_the_reserve_is_reached() {
    let now = Instant::now();
    let mut p = Pacer::new(0.5, 1000.0);
    let unix = 1_700_000_000;
    // 6 of 10 left: above the reserve of 5, no wait beyond the gap.
    p.observe(
        &RateLimit {
            limit: Some(10),
            remaining: Some(6),
            reset: Some(unix + 30),
        },
        now,
        unix,
    );
    assert_eq!(p.delay(now), Duration::ZERO);
    // 5 of 10 left: the applications' half; wait for the reset.
    p.observe(
        &RateLimit {
            limit: Some(10),
            remaining: Some(5),
            reset: Some(unix + 30),
        },
        now,
        unix,
    );
    assert_eq!(p.delay(now), Duration::from_secs(30));
    // A reset far away (clock skew) is bounded; one in the past still waits a second.
    let mut p = Pacer::new(1.0, 1000.0);
    p.observe(
        &RateLimit {
            limit: Some(10),
            remaining: Some(0),
            reset: Some(unix + 100_000),
        },
        now,
        unix,
    );
    assert_eq!(p.delay(now), MAX_RESET_WAIT);
    let mut p = Pacer::new(1.0, 1000.0);
    p.observe(
        &RateLimit {
            limit: Some(10),
            remaining: Some(0),
            reset: Some(unix - 100),
        },
        now,
        unix,
    );
    assert_eq!(p.delay(now), Duration::from_secs(1));
    // share 1.0 uses the bucket to the last request.
    let mut p = Pacer::new(1.0, 1000.0);
    p.observe(
        &RateLimit {
            limit: Some(10),
            remaining: Some(1),
            reset: Some(unix + 9),
        },
        now,
        unix,
    );
    assert_eq!(p.delay(now), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_hold_is_never_shortened() {
    let now = Instant::now();
    let mut p = Pacer::new(1.0, 1.0);
    p.hold(now, Duration::from_secs(120));
    p.sent(now);
    p.hold(now, Duration::from_secs(5));
    assert_eq!(p.delay(now), Duration::from_secs(120));
}

#[test]
fn odd_settings_do_not_panic() {
    for (share, rps) in [
        (0.0, 0.0),
        (f64::NAN, 1.0),
        (2.0, f64::INFINITY),
        (1.0, 1e-12),
        (-1.0, -1.0),
    ] {
        let p = Pacer::new(share, rps);
        assert!(p.gap() <= Duration::from_secs(3600));
    }
}

#[test]
fn gauges_are_the_known_headers_with_their_attributes() {
    use authwatch_core::otlp::metrics::v1::{metric, number_data_point};
    let host = authwatch_core::data::kv_str("server.address", "tenant.okta.com");
    let rl = RateLimit {
        limit: Some(600),
        remaining: None,
        reset: Some(4_102_444_800),
    };
    let got: Vec<_> = rl
        .gauges(std::slice::from_ref(&host), 7)
        .into_iter()
        .map(|m| {
            let Some(metric::Data::Gauge(g)) = m.data else {
                panic!("{} is not a gauge", m.name)
            };
            let p = &g.data_points[0];
            assert_eq!(p.attributes, std::slice::from_ref(&host));
            assert_eq!(p.time_unix_nano, 7);
            let Some(number_data_point::Value::AsInt(v)) = p.value else {
                panic!("{} is not an integer", m.name)
            };
            (m.name, m.unit, v)
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "authwatch.ratelimit.limit".to_owned(),
                "{request}".to_owned(),
                600
            ),
            (
                "authwatch.ratelimit.reset".to_owned(),
                "s".to_owned(),
                4_102_444_800
            ),
        ],
        "an absent header (remaining) is no gauge"
    );
    assert!(RateLimit::default().gauges(&[], 0).is_empty());
}
