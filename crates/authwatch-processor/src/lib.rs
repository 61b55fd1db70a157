#[doc(hidden)]
pub mod fuzzing;

authwatch_core::components!(Processor: batch, memory_limiter, redaction; Connector: forward, error_rate, alerts);
