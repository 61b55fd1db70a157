//! authwatch's load generator, as a library: the realistic identity-provider client spans it
//! sends ([`spans`]) and the wire-level span counter its sink uses ([`wire`]). The
//! `authwatch-loadgen` binary (feature `cli`) adds the OTLP/gRPC and OTLP/HTTP sender, the
//! counting sink and the startup timer; see docs/performance.md.
//!
//! The component crates' criterion benches use this library as a dev-dependency with
//! `default-features = false`, so that every benchmark runs on the same data as the end-to-end
//! benchmark.
#![forbid(unsafe_code)]

pub mod spans;
pub mod wire;
