//! Okta System Log: the `okta_logs` receiver's page decoding (a JSON array of LogEvent objects),
//! each event as an OTLP log record with flattened attributes and as a login, and the `Link`
//! header it follows to the next page.
//!
//! Byte 0 even: the rest is a page. Invariants: a record has at most the attribute limit; without
//! `include_user_ids` no attribute is named after a personal field (checked when the input has no
//! `.`, so that a key is never itself dotted).
//!
//! Byte 0 odd: the rest is a `Link` header of a page fetched from a fixed URL. Invariant: a next
//! URL that is accepted is on the configured origin.
#![no_main]

use authwatch_receiver::fuzzing::{
    next_link, okta_decode, personal_key, OKTA_MAX_ATTRIBUTES, OKTA_PERSONAL_FIELDS,
};
use libfuzzer_sys::fuzz_target;

const BASE: &str = "https://tenant.okta.com";
const PAGE: &str = "https://tenant.okta.com/api/v1/logs?since=2026-12-01T00%3A00%3A00Z";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 1 {
        let Ok(link) = std::str::from_utf8(rest) else {
            return;
        };
        if let Some(Ok(Some(next))) = next_link(link, PAGE, BASE) {
            assert!(
                next.starts_with("https://tenant.okta.com/"),
                "followed a link off the origin: {next}"
            );
        }
        return;
    }
    let Ok(records) = okta_decode(rest) else {
        return;
    };
    let undotted = !rest.contains(&b'.');
    for (r, _login) in &records {
        assert!(
            r.attributes.len() <= OKTA_MAX_ATTRIBUTES,
            "{} attributes",
            r.attributes.len()
        );
        assert_eq!(r.event_name, "okta.log");
        if undotted {
            if let Some(key) = personal_key(&r.attributes, OKTA_PERSONAL_FIELDS) {
                panic!("personal field kept: {key}");
            }
        }
    }
});
