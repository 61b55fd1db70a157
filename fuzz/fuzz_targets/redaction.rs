//! The `redaction` processor on encoded requests against the same rules on decoded ones
//! (`authwatch_processor::fuzzing::redaction_agrees`): for every trace or log request the
//! receiver accepts, redacting its bytes must give exactly what redacting the decoded request
//! gives, with the default rules and with `hash`, an allowed key and a `blocked_values`
//! pattern. A disagreement would let a secret leave the process in the bytes.
#![no_main]

use authwatch_core::SignalKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let kind = if which % 2 == 0 {
        SignalKind::Traces
    } else {
        SignalKind::Logs
    };
    authwatch_processor::fuzzing::redaction_agrees(kind, body);
});
