//! Auth0 log event type codes and their categories
//! (<https://auth0.com/docs/deploy-monitor/logs/log-event-type-codes>).

use std::fmt;

/// What a type code means for error-rate monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Success,
    Failure,
    RateLimit,
    Anomaly,
    Other,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Success => "success",
            Category::Failure => "failure",
            Category::RateLimit => "rate_limit",
            Category::Anomaly => "anomaly",
            Category::Other => "other",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Success codes.
pub const SUCCESS: &[&str] = &[
    "s",
    "ss",
    "ssa",
    "slo",
    "scoa",
    "sens",
    "seacft",
    "seccft",
    "sepft",
    "sertft",
    "seotpft",
    "seoobft",
    "sercft",
    "sede",
    "sapi",
    "mgmt_api_read",
    "scp",
    "scpr",
    "sv",
    "svr",
    "sdu",
    "gd_auth_succeed",
];

/// Failure codes (`fapi` is missing from the current table but still sent and in the SDKs).
pub const FAILURE: &[&str] = &[
    "f",
    "fp",
    "fu",
    "fc",
    "fco",
    "fcoa",
    "fens",
    "fs",
    "fsa",
    "flo",
    "feacft",
    "feccft",
    "fepft",
    "fertft",
    "ferrt",
    "feotpft",
    "feoobft",
    "fercft",
    "fede",
    "fapi",
    "actions_execution_failed",
    "fcpro",
    "fn",
    "fv",
    "fvr",
    "fcp",
    "fcpr",
    "fdu",
    "gd_auth_failed",
    "gd_send_sms_failure",
    "gd_send_pn_failure",
    "gd_send_voice_failure",
    "flows_execution_failed",
    "custom_domain_verification_failed",
];

/// Rate-limit and throttling codes.
pub const RATE_LIMIT: &[&str] = &[
    "api_limit",
    "api_limit_warning",
    "appi",
    "limit_delegation",
    "gd_otp_rate_limit_exceed",
    "gd_recovery_rate_limit_exceed",
    "limit_ui",
    "token_quota_consumption_warning",
];

/// Anomaly and attack-protection codes.
pub const ANOMALY: &[&str] = &[
    "limit_wc",
    "limit_mu",
    "limit_sul",
    "pwd_leak",
    "signup_pwd_leak",
    "reset_pwd_leak",
    "ublkdu",
    "pla",
    "w",
    "depnote",
    "mfar",
];

/// The category of a type code; codes not in the table are `other`.
pub fn category(code: &str) -> Category {
    if SUCCESS.contains(&code) {
        Category::Success
    } else if FAILURE.contains(&code) {
        Category::Failure
    } else if RATE_LIMIT.contains(&code) {
        Category::RateLimit
    } else if ANOMALY.contains(&code) {
        Category::Anomaly
    } else {
        Category::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_no_code_twice() {
        let mut all: Vec<&str> = [SUCCESS, FAILURE, RATE_LIMIT, ANOMALY].concat();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn categories() {
        assert_eq!(category("sepft"), Category::Success);
        assert_eq!(category("fepft"), Category::Failure);
        assert_eq!(category("fapi"), Category::Failure);
        assert_eq!(category("api_limit"), Category::RateLimit);
        assert_eq!(category("limit_wc"), Category::Anomaly);
        assert_eq!(category("sys_os_update_start"), Category::Other);
        assert_eq!(category(""), Category::Other);
    }
}
