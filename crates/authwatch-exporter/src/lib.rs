authwatch_core::components!(Exporter: otlp, otlphttp, debug, alertmanager, webhook, prometheus, console);
pub mod helper;
