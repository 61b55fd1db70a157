//! Auth0 log streams: the `auth0_logs` receiver's body decoding (JSON array, JSON lines, one
//! object, `{"logs": [...]}`) and each event as an OTLP log record with flattened attributes.
//!
//! Invariants: a record has at most the receiver's attribute limit; without `include_user_ids`
//! no attribute is named after a personal field (checked when the input has no `.`, so that a
//! key is never itself dotted).
#![no_main]

use authwatch_core::otlp::common::v1::any_value;
use authwatch_receiver::fuzzing::{
    auth0_decode, personal_key, AUTH0_MAX_ATTRIBUTES, AUTH0_PERSONAL_FIELDS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(records) = auth0_decode(data) else {
        return;
    };
    let undotted = !data.contains(&b'.');
    for r in &records {
        assert!(
            r.attributes.len() <= AUTH0_MAX_ATTRIBUTES,
            "{} attributes",
            r.attributes.len()
        );
        assert_eq!(r.event_name, "auth0.log");
        assert!(matches!(
            r.body.as_ref().and_then(|b| b.value.as_ref()),
            Some(any_value::Value::StringValue(_))
        ));
        if undotted {
            if let Some(key) = personal_key(&r.attributes, AUTH0_PERSONAL_FIELDS) {
                panic!("personal field kept: {key}");
            }
        }
    }
});
