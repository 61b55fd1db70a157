//! What the tenant-log receivers (`auth0_logs`, `okta_logs`) share; not a component.
//!
//! - [`logins`]: logins as an error rate: outcome and failure category counters per client and
//!   connection, and the distinct users affected in a bounded sketch.

pub mod logins;
