authwatch_core::components!(Exporter: otlp, otlphttp, debug);
pub mod helper;
