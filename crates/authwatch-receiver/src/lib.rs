#[doc(hidden)]
pub mod fuzzing;
pub mod tenant_logs;

authwatch_core::components!(Receiver: otlp, synthetic, statuspage, auth0_logs);
