#[doc(hidden)]
pub mod fuzzing;

authwatch_core::components!(Receiver: otlp, synthetic, statuspage, auth0_logs);
