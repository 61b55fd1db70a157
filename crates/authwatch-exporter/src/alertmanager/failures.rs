//! The error of a send to an HA set of Alertmanagers: every endpoint failed.

use std::fmt;

use crate::helper::alert::http::SendError;
use crate::helper::{ExportError, Retry};

/// Every endpoint of an HA set failed: one error per endpoint.
#[derive(Debug)]
pub struct Failures(pub Vec<SendError>);

impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() > 1 {
            write!(f, "all {} endpoints failed: ", self.0.len())?;
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failures {}

impl ExportError for Failures {
    /// Retry when any endpoint may accept a retry, waiting for the longest server hint.
    fn retry(&self) -> Retry {
        let mut out = Retry::No;
        for e in &self.0 {
            out = match (out, e.retry()) {
                (Retry::After(a), Retry::After(b)) => Retry::After(a.max(b)),
                (Retry::After(a), _) | (_, Retry::After(a)) => Retry::After(a),
                (Retry::Yes, _) | (_, Retry::Yes) => Retry::Yes,
                _ => Retry::No,
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;

    use super::*;

    fn status(code: u16) -> SendError {
        SendError::Status {
            url: "u".into(),
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: None,
            message: String::new(),
        }
    }

    #[test]
    fn failures_retry_if_any_endpoint_may_accept() {
        let after = SendError::Status {
            url: "b".into(),
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(7)),
            message: String::new(),
        };
        assert_eq!(Failures(vec![status(400), status(400)]).retry(), Retry::No);
        assert_eq!(Failures(vec![status(400), status(503)]).retry(), Retry::Yes);
        assert_eq!(
            Failures(vec![status(503), after]).retry(),
            Retry::After(Duration::from_secs(7))
        );
        assert_eq!(
            Failures(vec![status(400), status(503)]).to_string(),
            "all 2 endpoints failed: POST u failed with HTTP 400 Bad Request: ; POST u failed with HTTP 503 Service Unavailable: "
        );
    }
}
