//! OTLP/JSON decoding: opentelemetry-proto's `with-serde` impls, plus the check they miss.
//!
//! Those impls decode a metric's data (`gauge`, `sum`, ...) and a data point's or exemplar's
//! value (`asInt`, `asDouble`) through `#[serde(flatten)]` on an `Option`, and serde turns any
//! error inside such a field into `None`. A metric with a malformed `gauge`, or a point with
//! `"asInt": "abc"`, would decode "successfully" with its data silently gone. Metrics requests are
//! therefore parsed once into a JSON tree, decoded from it, and walked: a field present in the
//! JSON but empty after decoding is reported, so the request is answered `400` like any other
//! malformed body instead of losing data behind a `200`.

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::metrics::v1::{metric, Exemplar, Metric, NumberDataPoint};
use serde::Deserialize;
use serde_json::Value;

const DATA_KEYS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];
const VALUE_KEYS: [&str; 2] = ["asDouble", "asInt"];

/// The elements of the JSON array at `key` (none when absent or not an array; the typed decode
/// has already refused a non-array where an array belongs).
fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The first of `keys` present with a non-null value.
fn present<'a>(v: &Value, keys: &[&'a str]) -> Option<&'a str> {
    keys.iter()
        .copied()
        .find(|k| v.get(*k).is_some_and(|x| !x.is_null()))
}

/// Why a body is not an OTLP/JSON export request.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON, or JSON that serde cannot decode as the request.
    #[error(transparent)]
    Serde(#[from] serde_json::Error),
    /// JSON the serde impls would decode with this metric's data silently gone.
    #[error("metric `{}`: {problem}", .metric.escape_debug())]
    Metric {
        metric: String,
        #[source]
        problem: MetricError,
    },
}

/// What is wrong inside one metric of an OTLP/JSON request.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// `gauge`, `sum`, ... present but not decodable.
    #[error("`{0}` is not valid OTLP/JSON")]
    Data(&'static str),
    /// `asInt` or `asDouble` of a data point present but not a number.
    #[error("data point {point}: `{key}` is not a valid number")]
    Value { point: usize, key: &'static str },
    #[error("data point {point}: {exemplar}")]
    PointExemplar {
        point: usize,
        #[source]
        exemplar: ExemplarError,
    },
    #[error(transparent)]
    Exemplar(#[from] ExemplarError),
}

/// An exemplar's `asInt` or `asDouble` present but not a number.
#[derive(Debug, thiserror::Error)]
#[error("exemplar {index}: `{key}` is not a valid number")]
pub struct ExemplarError {
    index: usize,
    key: &'static str,
}

pub(crate) fn metrics_from_json(bytes: &[u8]) -> Result<ExportMetricsServiceRequest, JsonError> {
    let tree: Value = serde_json::from_slice(bytes)?;
    let req = ExportMetricsServiceRequest::deserialize(&tree)?;
    for (rm, rm_json) in req
        .resource_metrics
        .iter()
        .zip(items(&tree, "resourceMetrics"))
    {
        for (sm, sm_json) in rm.scope_metrics.iter().zip(items(rm_json, "scopeMetrics")) {
            for (m, m_json) in sm.metrics.iter().zip(items(sm_json, "metrics")) {
                check_metric(m, m_json).map_err(|problem| JsonError::Metric {
                    metric: m.name.clone(),
                    problem,
                })?;
            }
        }
    }
    Ok(req)
}

fn check_metric(m: &Metric, json: &Value) -> Result<(), MetricError> {
    let Some(data) = &m.data else {
        return match present(json, &DATA_KEYS) {
            Some(key) => Err(MetricError::Data(key)),
            None => Ok(()),
        };
    };
    match data {
        metric::Data::Gauge(g) => check_number_points(&g.data_points, &json["gauge"]),
        metric::Data::Sum(s) => check_number_points(&s.data_points, &json["sum"]),
        metric::Data::Histogram(h) => {
            for (p, p_json) in h
                .data_points
                .iter()
                .zip(items(&json["histogram"], "dataPoints"))
            {
                check_exemplars(&p.exemplars, p_json)?;
            }
            Ok(())
        }
        metric::Data::ExponentialHistogram(h) => {
            let points = items(&json["exponentialHistogram"], "dataPoints");
            for (p, p_json) in h.data_points.iter().zip(points) {
                check_exemplars(&p.exemplars, p_json)?;
            }
            Ok(())
        }
        metric::Data::Summary(_) => Ok(()),
    }
}

fn check_number_points(points: &[NumberDataPoint], json: &Value) -> Result<(), MetricError> {
    for (point, (p, p_json)) in points.iter().zip(items(json, "dataPoints")).enumerate() {
        if p.value.is_none() {
            if let Some(key) = present(p_json, &VALUE_KEYS) {
                return Err(MetricError::Value { point, key });
            }
        }
        check_exemplars(&p.exemplars, p_json)
            .map_err(|exemplar| MetricError::PointExemplar { point, exemplar })?;
    }
    Ok(())
}

fn check_exemplars(exemplars: &[Exemplar], point: &Value) -> Result<(), ExemplarError> {
    for (index, (e, e_json)) in exemplars.iter().zip(items(point, "exemplars")).enumerate() {
        if e.value.is_none() {
            if let Some(key) = present(e_json, &VALUE_KEYS) {
                return Err(ExemplarError { index, key });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge_point(point: &str) -> String {
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[
               {{"name":"g","gauge":{{"dataPoints":[{point}]}}}}]}}]}}]}}"#
        )
    }

    #[test]
    fn valid_metrics_decode_as_serde_does() {
        for text in [
            gauge_point(r#"{"asInt":"7"}"#),
            gauge_point(r#"{"asInt":7,"exemplars":[{"asDouble":1.5}]}"#),
            gauge_point(r#"{"asDouble":2.5,"attributes":[]}"#),
            gauge_point("{}"),
            include_str!("testdata/metrics.json").to_owned(),
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"no data"}]}]}]}"#.into(),
        ] {
            let ours = metrics_from_json(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
            let plain: ExportMetricsServiceRequest = serde_json::from_str(&text).unwrap();
            assert_eq!(ours, plain);
        }
    }

    /// OTLP/JSON doubles are read to the nearest double, as `str::parse` does, however many
    /// digits they have (serde_json's `float_roundtrip`; without it long decimals can be read one
    /// ULP off, as the `otlp_json` fuzz target found).
    #[test]
    fn long_decimal_doubles_are_read_exactly() {
        use authwatch_core::otlp::metrics::v1::{metric::Data, number_data_point::Value as V};
        let long = |digit: char, n: usize, tail: &str| format!("{}{tail}", digit.to_string().repeat(n));
        let texts = [
            long('2', 111, "1.5"),
            long('9', 40, ".5e-30"),
            long('1', 25, ".000000000000000000000000000001"),
            "0.1000000000000000055511151231257827021181583404541015625".to_owned(),
            "2.2250738585072011e-308".to_owned(),
            "1.7976931348623157e308".to_owned(),
            format!("0.{}1", "3".repeat(60)),
            format!("{}e-200", "7".repeat(70)),
        ];
        let mut inexact = Vec::new();
        for text in &texts {
            let want: f64 = text.parse().unwrap();
            let req = metrics_from_json(gauge_point(&format!(r#"{{"asDouble":{text}}}"#)).as_bytes())
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            let metric = &req.resource_metrics[0].scope_metrics[0].metrics[0];
            let Some(Data::Gauge(g)) = &metric.data else { panic!("{metric:?}") };
            let Some(V::AsDouble(got)) = g.data_points[0].value else { panic!("{g:?}") };
            if got.to_bits() != want.to_bits() {
                inexact.push(format!("{text}: read {got:e}, nearest double {want:e}"));
            }
        }
        assert!(inexact.is_empty(), "{inexact:#?}");
    }

    #[test]
    fn data_that_serde_would_silently_drop_is_an_error() {
        let cases = [
            (gauge_point(r#"{"asInt":"abc"}"#), "metric `g`: data point 0: `asInt` is not a valid number"),
            (gauge_point(r#"{"asDouble":"NaN"}"#), "metric `g`: data point 0: `asDouble` is not a valid number"),
            (
                gauge_point(r#"{"asInt":1,"exemplars":[{"asInt":"x"}]}"#),
                "metric `g`: data point 0: exemplar 0: `asInt` is not a valid number",
            ),
            (gauge_point(r#"{"asInt":1,"attributes":null}"#), "metric `g`: `gauge` is not valid OTLP/JSON"),
            (
                r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","histogram":{"dataPoints":"x"}}]}]}]}"#.into(),
                "metric `h`: `histogram` is not valid OTLP/JSON",
            ),
        ];
        for (text, want) in cases {
            // The plain serde impls accept it, with the data gone.
            assert!(
                serde_json::from_str::<ExportMetricsServiceRequest>(&text).is_ok(),
                "{text}"
            );
            assert_eq!(
                metrics_from_json(text.as_bytes()).unwrap_err().to_string(),
                want,
                "{text}"
            );
        }
    }
}
