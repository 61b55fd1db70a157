authwatch_core::components!(Exporter: otlp, otlphttp, debug, alertmanager, webhook, prometheus);
pub mod helper;
