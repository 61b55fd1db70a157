use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authwatch_core::otlp::metrics::v1::metric;

use super::*;

fn login<'a>(outcome: Outcome, user: &'a str) -> Login<'a> {
    Login {
        outcome,
        client: "web",
        connection: "db",
        user: Some(user),
        at: None,
    }
}

#[test]
fn counts_by_outcome_and_category() {
    let now = SystemTime::now();
    let mut l = Logins::new("auth0");
    l.record(&login(Outcome::Success, "a"), now);
    l.record(&login(Outcome::Success, "a"), now);
    l.record(
        &login(Outcome::Failure(FailureCategory::WrongCredentials), "b"),
        now,
    );
    l.record(
        &login(Outcome::Failure(FailureCategory::ProviderError), "c"),
        now,
    );
    assert_eq!(l.total(), 4);
    let m = l.metrics(1, now);
    assert_eq!(m[0].name, LOGINS);
    let Some(metric::Data::Sum(s)) = &m[0].data else {
        panic!("sum")
    };
    assert_eq!(s.data_points.len(), 3);
    let Some(metric::Data::Gauge(g)) = &m[1].data else {
        panic!("gauge")
    };
    let v: Vec<_> = g.data_points.iter().map(|p| p.value).collect();
    use authwatch_core::otlp::metrics::v1::number_data_point::Value::AsInt;
    assert_eq!(v, [Some(AsInt(1)), Some(AsInt(2))]);
}

#[test]
fn users_are_counted_once_and_only_within_the_window() {
    let now = SystemTime::now();
    let mut l = Logins::new("okta");
    for i in 0..200 {
        let u = format!("user{}", i % 50);
        l.record(
            &login(Outcome::Failure(FailureCategory::TenantError), &u),
            now,
        );
    }
    let n = l.users_affected(true, now);
    assert!((48..=52).contains(&n), "{n}");
    let old = Login {
        at: Some(now - Duration::from_secs(3600)),
        ..login(Outcome::Failure(FailureCategory::ProviderError), "zz")
    };
    l.record(&old, now);
    assert!((48..=52).contains(&l.users_affected(false, now)));
    // Ten minutes on, nobody is affected any more.
    assert_eq!(l.users_affected(true, now + Duration::from_secs(600)), 0);
}

#[test]
fn user_failures_are_not_provider_side() {
    let now = SystemTime::now();
    let mut l = Logins::new("auth0");
    for u in ["a", "b", "c"] {
        l.record(
            &login(Outcome::Failure(FailureCategory::WrongCredentials), u),
            now,
        );
    }
    assert_eq!(l.users_affected(true, now), 0);
    assert_eq!(l.users_affected(false, now), 3);
    assert!(!FailureCategory::Blocked.is_provider_side());
    assert!(FailureCategory::TenantError.is_provider_side());
    for c in FailureCategory::ALL {
        assert_eq!(FailureCategory::parse(c.as_str()), Some(c));
    }
}

#[test]
fn series_are_bounded() {
    let now = SystemTime::now();
    let mut l = Logins::new("auth0");
    for i in 0..(MAX_SERIES + 50) {
        let c = format!("client{i}");
        l.record(
            &Login {
                client: &c,
                ..login(Outcome::Success, "a")
            },
            now,
        );
    }
    let m = l.metrics(1, now);
    let Some(metric::Data::Sum(s)) = &m[0].data else {
        panic!("sum")
    };
    assert_eq!(s.data_points.len(), MAX_SERIES + 1);
    assert_eq!(l.total(), (MAX_SERIES + 50) as u64);
}

#[test]
fn a_longer_users_window_keeps_older_failures() {
    // At the start of a minute, so "20 minutes ago" is exactly 20 minute buckets back.
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000 / 60 * 60);
    let failed = |user: &'static str, ago: u64| Login {
        at: Some(now - Duration::from_secs(ago * 60)),
        ..login(Outcome::Failure(FailureCategory::ProviderError), user)
    };
    let mut short = Logins::new("auth0");
    let mut long = Logins::with_users_window("auth0", Duration::from_secs(30 * 60));
    for l in [&mut short, &mut long] {
        l.record(&failed("a", 0), now);
        l.record(&failed("b", 4), now);
        l.record(&failed("c", 20), now);
        l.record(&failed("d", 31), now);
    }
    assert_eq!(
        short.users_affected(true, now),
        2,
        "a and b within 5 minutes"
    );
    assert_eq!(
        long.users_affected(true, now),
        3,
        "c too within 30 minutes, not d"
    );
    // 17 minutes on, c failed 37 minutes ago: out of the window; a and b are in.
    assert_eq!(
        long.users_affected(true, now + Duration::from_secs(17 * 60)),
        2
    );
    let description = |l: &mut Logins| l.metrics(0, now)[1].description.clone();
    assert!(description(&mut short).contains("last 5m"));
    assert!(description(&mut long).contains("last 30m"));
}

#[test]
fn users_windows_are_whole_minutes_up_to_an_hour() {
    use authwatch_core::time::Window;
    for ok in [60, 300, 1800, 3600] {
        assert_eq!(check_users_window(Window::secs(ok)), Ok(()), "{ok}s");
    }
    for bad in [Window::secs(30), Window::secs(90), Window::secs(7200)] {
        assert!(check_users_window(bad).is_err(), "{bad}");
    }
    assert_eq!(
        check_users_window(Window::secs(90)).unwrap_err().to_string(),
        "must be whole minutes from `1m` to `1h` (one sketch is kept per minute), e.g. `15m`; got `90s`"
    );
}
