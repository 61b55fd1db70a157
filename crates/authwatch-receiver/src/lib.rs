#[doc(hidden)]
pub mod fuzzing;
mod serve;
pub mod tls;

authwatch_core::components!(Receiver: otlp, synthetic, statuspage, auth0_logs);
