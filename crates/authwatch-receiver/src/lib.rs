#[doc(hidden)]
pub mod fuzzing;
// Shared by the tenant-log pollers (`auth0_logs` pull mode, `okta_logs`); not a component.

authwatch_core::components!(Receiver: otlp, synthetic, statuspage, auth0_logs, okta_logs);
