//! Entry points for the cargo-fuzz targets in `fuzz/`: thin `pub` wrappers over crate-private
//! code, so the fuzzers run exactly what the processors run. Not an API: hidden from the docs and
//! free to change with the code it wraps.

use std::fmt::Debug;

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::wire::check;
use authwatch_core::SignalKind;
use prost::Message;

use crate::redaction::fuzzing::{redactors, walk, Counts, Redactor, Walked};

/// Redacts a request the receiver would accept both ways, on its bytes and decoded, with each
/// test config, and panics when they disagree: the bytes path must leave nothing the decoded
/// path redacts (a secret that would leave the process) and change nothing it keeps.
pub fn redaction_agrees(kind: SignalKind, body: &[u8]) {
    if !matches!(check(kind, body), Some(Ok(_))) {
        return; // the receiver refuses it: nothing reaches redaction
    }
    match kind {
        SignalKind::Traces => agree::<ExportTraceServiceRequest>(kind, body, Redactor::traces),
        SignalKind::Logs => agree::<ExportLogsServiceRequest>(kind, body, Redactor::logs),
        SignalKind::Metrics => {}
    }
}

fn agree<R: Message + Default + Clone + PartialEq + Debug>(
    kind: SignalKind,
    body: &[u8],
    redact: fn(&Redactor, &mut R, &mut Counts),
) {
    let decoded = R::decode(body).expect("checked bytes decode");
    for (name, r) in redactors() {
        let mut owned = decoded.clone();
        redact(&r, &mut owned, &mut Counts::default());
        let got = match walk(&r, kind, body) {
            Walked::Same => decoded.clone(),
            Walked::Changed(b) => R::decode(&b[..])
                .unwrap_or_else(|e| panic!("{name}: the rewrite does not decode: {e}")),
            Walked::Decode => continue,
        };
        assert_eq!(got, owned, "{name}: bytes and decoded redaction disagree");
    }
}
