//! What the tenant-log receivers (`auth0_logs`, `okta_logs`) share: events as attributes
//! ([`attributes`]), a durable cursor
//! ([`checkpoint`]), `Link: rel="next"` that never leaves the configured origin ([`link`]), the
//! provider's rate-limit headers with a pacer that keeps to a share of the budget
//! ([`ratelimit`]), logins as an error rate ([`logins`]: outcome and failure category
//! counters per client and connection, and the distinct users affected in a bounded sketch),
//! and the ids the pipelines accepted, kept durably for the dedupe ([`seen`]). Not a
//! component: no config, no registry entry; a crate of its own so that neither receiver leans on
//! the other.

pub mod attributes;
pub mod checkpoint;
pub mod link;
pub mod logins;
pub mod ratelimit;
pub mod seen;
