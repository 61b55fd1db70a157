//! OpenTelemetry-to-Prometheus names, as the Collector's translator (`pkg/translator/prometheus`)
//! and the OpenTelemetry specification's Prometheus compatibility rules write them:
//! `http.client.request.duration` (unit `s`, histogram) -> `http_client_request_duration_seconds`,
//! `authwatch.dependency.requests` (monotonic sum) -> `authwatch_dependency_requests_total`,
//! `authwatch.probe.success` (gauge, unit `1`) -> `authwatch_probe_success_ratio`.

/// What the metric is, as far as its name is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Gauge,
    /// A monotonic sum: a Prometheus counter, named `_total`.
    Counter,
    /// A non-monotonic sum: a Prometheus gauge (no `_ratio` for unit `1`).
    UpDown,
    Histogram,
    Summary,
}

/// The Prometheus metric name of an OTel metric. `namespace` (may be empty) is prefixed;
/// `suffixes: false` leaves out the unit, `_total` and `_ratio` suffixes.
pub fn metric_name(
    name: &str,
    unit: &str,
    shape: Shape,
    namespace: &str,
    suffixes: bool,
) -> String {
    let mut tokens: Vec<String> = tokens(namespace).chain(tokens(name)).collect();
    if suffixes {
        let (main, per) = unit_suffixes(unit);
        if let Some(main) = main {
            if !tokens.contains(&main) {
                tokens.push(main);
            }
        }
        if let Some(per) = per {
            if !tokens.contains(&per) {
                tokens.push("per".into());
                tokens.push(per);
            }
        }
        if shape == Shape::Counter {
            tokens.retain(|t| t != "total");
            tokens.push("total".into());
        }
        if shape == Shape::Gauge && unit.trim() == "1" && !tokens.iter().any(|t| t == "ratio") {
            tokens.push("ratio".into());
        }
    }
    let mut out = tokens.join("_");
    if out.is_empty() {
        out.push_str("unnamed");
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// An attribute key as a Prometheus label name: characters other than ASCII letters, digits and
/// `_` become `_`; a leading digit gets `key_`, a single leading `_` gets `key`. `None` for an
/// empty key.
pub fn label_name(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{s}")
    } else if s.starts_with('_') && !s.starts_with("__") {
        format!("key{s}")
    } else {
        s
    })
}

/// Whether `s` is already a valid Prometheus label name (for `const_labels`).
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// Name tokens: the pieces between characters that are not ASCII letters or digits.
fn tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// The (main, per) unit words of a UCUM unit: `s` -> seconds, `By/s` -> bytes per second.
/// Annotations in braces (`{request}`) are not units and are dropped.
fn unit_suffixes(unit: &str) -> (Option<String>, Option<String>) {
    let mut unit = unit.trim().to_owned();
    while let (Some(a), Some(b)) = (unit.find('{'), unit.find('}')) {
        if b < a {
            break;
        }
        unit.replace_range(a..=b, "");
    }
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m.trim(), Some(p.trim())),
        None => (unit.trim(), None),
    };
    let main = match main {
        "" | "1" => None,
        u => Some(sanitise_word(main_unit(u))),
    };
    let per = per
        .filter(|p| !p.is_empty())
        .map(|p| sanitise_word(per_unit(p)));
    (
        main.filter(|s| !s.is_empty()),
        per.filter(|s| !s.is_empty()),
    )
}

fn sanitise_word(s: &str) -> String {
    tokens(s).collect::<Vec<_>>().join("_")
}

fn main_unit(u: &str) -> &str {
    match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        other => other,
    }
}

fn per_unit(u: &str) -> &str {
    match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_collector() {
        let cases = [
            (
                "http.client.request.duration",
                "s",
                Shape::Histogram,
                "http_client_request_duration_seconds",
            ),
            (
                "authwatch.dependency.requests",
                "{request}",
                Shape::Counter,
                "authwatch_dependency_requests_total",
            ),
            (
                "authwatch.probe.success",
                "1",
                Shape::Gauge,
                "authwatch_probe_success_ratio",
            ),
            (
                "authwatch.dependency.error_ratio",
                "1",
                Shape::Gauge,
                "authwatch_dependency_error_ratio",
            ),
            ("queue.depth", "1", Shape::UpDown, "queue_depth"),
            ("net.io", "By/s", Shape::Gauge, "net_io_bytes_per_second"),
            ("requests.total", "", Shape::Counter, "requests_total"),
            ("latency_seconds", "s", Shape::Histogram, "latency_seconds"),
            (
                "cpu.utilization",
                "%",
                Shape::Gauge,
                "cpu_utilization_percent",
            ),
            ("2xx.count", "", Shape::Gauge, "_2xx_count"),
            (
                "weird--name..x",
                "{x}/s",
                Shape::Gauge,
                "weird_name_x_per_second",
            ),
            ("", "", Shape::Gauge, "unnamed"),
        ];
        for (name, unit, shape, want) in cases {
            assert_eq!(
                metric_name(name, unit, shape, "", true),
                want,
                "{name} [{unit}]"
            );
        }
        assert_eq!(
            metric_name("probe.runs", "{run}", Shape::Counter, "idp", true),
            "idp_probe_runs_total"
        );
        assert_eq!(
            metric_name("probe.duration", "s", Shape::Histogram, "", false),
            "probe_duration"
        );
    }

    #[test]
    fn labels_are_sanitised() {
        assert_eq!(label_name("error.class").as_deref(), Some("error_class"));
        assert_eq!(label_name("2fa").as_deref(), Some("key_2fa"));
        assert_eq!(label_name("_private").as_deref(), Some("key_private"));
        assert_eq!(label_name("__reserved").as_deref(), Some("__reserved"));
        assert_eq!(label_name("héllo").as_deref(), Some("h_llo"));
        assert_eq!(label_name(""), None);
        assert!(is_label_name("team"));
        assert!(!is_label_name("9team"));
        assert!(!is_label_name("__name__"));
        assert!(!is_label_name("a-b"));
    }
}
