//! Status documents over time: a Statuspage v2 page from operational through an incident to
//! resolved, incidents open at the first poll, Atom and RSS feeds.

use super::*;

#[tokio::test]
async fn statuspage_v2_sequence_operational_incident_degraded_resolved() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let mut p = poller(
        &server.url("/api/v2/summary.json"),
        Format::StatuspageV2,
        &[],
        &sink,
    );

    // Operational.
    server.json("summary_operational.json", "\"v1\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(server.last_conditional(), "");
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(1));
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    assert_eq!(gauge(&sink, semconv::STATUS_INCIDENTS_ACTIVE, ""), Some(0));
    assert_eq!(
        gauge(&sink, semconv::STATUS_COMPONENT, "API Requests"),
        Some(0)
    );
    assert_eq!(gauge(&sink, semconv::STATUS_COMPONENT, "Webhooks"), Some(0));
    assert!(log_records(&sink).is_empty());

    // Unchanged: 304, and the last state is sent again.
    let before = sink.item_count(SignalKind::Metrics);
    assert_eq!(p.poll_once().await, Polled::NotModified);
    assert_eq!(server.last_conditional(), "\"v1\"");
    assert_eq!(sink.item_count(SignalKind::Metrics), 2 * before);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(1));

    // Incident opened.
    server.json("summary_incident.json", "\"v2\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(1));
    assert_eq!(gauge(&sink, semconv::STATUS_INCIDENTS_ACTIVE, ""), Some(1));
    assert_eq!(
        incident_events(&sink),
        [("opened".into(), "investigating".into(), "".into())]
    );
    let opened = log_records(&sink).pop().unwrap();
    let a = &opened.attributes;
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_ID).as_deref(),
        Some("x1yzk8c5ls2q")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_NAME).as_deref(),
        Some("Elevated error rates on API requests")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_IMPACT).as_deref(),
        Some("minor")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_URL).as_deref(),
        Some("https://stspg.io/abc123")
    );
    assert_eq!(
        body(&opened),
        "Elevated error rates on API requests: We are investigating reports of elevated error rates."
    );
    assert_eq!(
        opened.time_unix_nano,
        emit::parse_time("2026-11-26T10:00:00.000Z").unwrap()
    );
    assert_eq!(opened.severity_text, "WARN");

    // Degraded component, incident updated.
    server.json("summary_degraded.json", "\"v3\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(2));
    assert_eq!(
        gauge(&sink, semconv::STATUS_COMPONENT, "API Requests"),
        Some(1)
    );
    assert_eq!(
        gauge(&sink, semconv::STATUS_COMPONENT, "Git Operations"),
        Some(0)
    );
    assert_eq!(
        incident_events(&sink)[1],
        (
            "updated".into(),
            "identified".into(),
            "investigating".into()
        )
    );
    let updated = log_records(&sink).pop().unwrap();
    assert_eq!(
        str_attr(&updated.attributes, semconv::STATUS_INCIDENT_IMPACT).as_deref(),
        Some("major")
    );

    // Resolved: the incident leaves the summary.
    server.json("summary_resolved.json", "\"v4\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    assert_eq!(gauge(&sink, semconv::STATUS_INCIDENTS_ACTIVE, ""), Some(0));
    assert_eq!(
        gauge(&sink, semconv::STATUS_COMPONENT, "API Requests"),
        Some(0)
    );
    assert_eq!(
        incident_events(&sink),
        [
            ("opened".into(), "investigating".into(), "".into()),
            (
                "updated".into(),
                "identified".into(),
                "investigating".into()
            ),
            ("resolved".into(), "resolved".into(), "identified".into()),
        ]
    );
    let resolved = log_records(&sink).pop().unwrap();
    assert_eq!(resolved.severity_text, "INFO");

    // Nothing new: no more records.
    assert_eq!(p.poll_once().await, Polled::NotModified);
    assert_eq!(incident_events(&sink).len(), 3);
}

#[tokio::test]
async fn incidents_open_at_first_poll_are_reported_and_components_filtered() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let mut p = poller(
        &server.url("/api/v2/summary.json"),
        Format::StatuspageV2,
        &["API Requests", "8l4ygp009s5s"],
        &sink,
    );
    server.json("summary_degraded.json", "\"d\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(
        incident_events(&sink),
        [("opened".into(), "identified".into(), "".into())]
    );
    let comps: Vec<String> = last_gauges(&sink)
        .into_iter()
        .filter(|(n, _, _)| n == semconv::STATUS_COMPONENT)
        .map(|(_, c, _)| c)
        .collect();
    assert_eq!(comps, ["Git Operations", "API Requests"]);
    let opened = log_records(&sink).pop().unwrap();
    assert_eq!(opened.severity_text, "ERROR", "major impact opens at ERROR");
}

#[tokio::test]
async fn atom_feed_sequence() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let mut p = poller(
        &server.url("/feed?domain=example.us.auth0.com"),
        Format::Atom,
        &[],
        &sink,
    );
    let atom = "application/atom+xml";

    // Only a resolved incident in the history: operational, and nothing to report.
    server.set(200, data("feed_operational.atom"), atom, None);
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(1));
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    assert!(log_records(&sink).is_empty());

    server.set(200, data("feed_incident.atom"), atom, None);
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(1));
    assert_eq!(gauge(&sink, semconv::STATUS_INCIDENTS_ACTIVE, ""), Some(1));
    let opened = log_records(&sink).pop().unwrap();
    assert_eq!(opened.event_name, semconv::STATUS_INCIDENT_OPENED);
    let a = &opened.attributes;
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_ID).as_deref(),
        Some("tag:status.auth0.com,2005:Incident/1002")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_NAME).as_deref(),
        Some("Increased authentication errors")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_STATUS).as_deref(),
        Some("investigating")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_IMPACT).as_deref(),
        Some("minor")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_URL).as_deref(),
        Some("https://status.auth0.com/incidents/1002")
    );
    assert_eq!(
        body(&opened),
        "Increased authentication errors: We are investigating increased login errors."
    );

    server.set(200, data("feed_monitoring.atom"), atom, None);
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(1));

    server.set(200, data("feed_resolved.atom"), atom, None);
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    assert_eq!(gauge(&sink, semconv::STATUS_INCIDENTS_ACTIVE, ""), Some(0));
    assert_eq!(
        incident_events(&sink),
        [
            ("opened".into(), "investigating".into(), "".into()),
            (
                "updated".into(),
                "monitoring".into(),
                "investigating".into()
            ),
            ("resolved".into(), "resolved".into(), "monitoring".into()),
        ]
    );
    assert_eq!(
        body(&log_records(&sink).pop().unwrap()),
        "Increased authentication errors: This incident has been resolved."
    );
}

#[tokio::test]
async fn rss_feed_with_an_outage() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let mut p = poller(&server.url("/history.rss"), Format::Rss, &[], &sink);
    server.set(
        200,
        data("feed_incident.rss"),
        "application/rss+xml",
        Some("\"r1\""),
    );
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(2));
    let recs = log_records(&sink);
    assert_eq!(
        recs.len(),
        1,
        "the completed maintenance is history, not news"
    );
    let a = &recs[0].attributes;
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_STATUS).as_deref(),
        Some("identified")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_IMPACT).as_deref(),
        Some("major")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_ID).as_deref(),
        Some("https://status.example.com/incidents/77")
    );
    assert_eq!(
        recs[0].time_unix_nano,
        emit::parse_time("2026-11-26T10:00:00Z").unwrap()
    );
    // Conditional request with the ETag; 304 keeps the state.
    assert_eq!(p.poll_once().await, Polled::NotModified);
    assert_eq!(server.last_conditional(), "\"r1\"");
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(2));
    assert_eq!(log_records(&sink).len(), 1);
}
