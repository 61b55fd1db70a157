//! Test helpers shared by every authwatch crate (dev-dependency only): a collecting sink whose
//! answer can be set, OTLP data builders, config contract asserts, real servers on loopback,
//! raw HTTP/1.1 clients (`raw_http`, `slow_client`) and scratch directories.
#![forbid(unsafe_code)]

pub mod alertmanager;
pub mod auth0_server;
pub mod components;
pub mod data;
pub mod oauth_server;
pub mod oidc_provider;
pub mod okta_server;
pub mod otlp_server;
pub mod peer;
pub mod raw_http;
pub mod scratch;
pub mod sink;
pub mod slow_client;
pub mod tcp_proxy;
pub mod tls;

pub use data::*;
pub use scratch::Scratch;
pub use sink::{permanent, Sink};

use authwatch_core::registry::decode_config;
use authwatch_core::{ComponentConfig, Validator};

/// Checks a component config's contract: `{}` and `null` decode to `Config::default()`,
/// the default validates, and an unknown field is refused with its name in the message.
pub fn assert_config_contract<C>(expected_type: &str)
where
    C: ComponentConfig + PartialEq + std::fmt::Debug,
{
    assert_config_decodes::<C>(expected_type);
    let mut v = Validator::new(C::TYPE);
    C::default().validate(&mut v);
    assert!(
        !v.has_errors(),
        "the default config must validate: {:?}",
        v.errors()
    );
}

/// The contract for components that have a required field (an exporter's `endpoint`, a
/// memory limit): everything of [`assert_config_contract`] except that the default validates.
pub fn assert_config_decodes<C>(expected_type: &str)
where
    C: ComponentConfig + PartialEq + std::fmt::Debug,
{
    assert_eq!(C::TYPE, expected_type, "TYPE must equal the module name");
    let from_empty: C = decode_config(serde_json::json!({})).expect("`{}` must decode");
    assert_eq!(
        from_empty,
        C::default(),
        "`{{}}` must decode to Config::default()"
    );
    let from_null: C = decode_config(serde_json::Value::Null).expect("null must decode");
    assert_eq!(from_null, C::default());
    let err = match decode_config::<C>(serde_json::json!({"definitely_not_a_field": 1})) {
        Ok(_) => panic!("unknown fields must be refused (serde(deny_unknown_fields))"),
        Err(e) => e,
    };
    assert!(
        err.to_string().contains("definitely_not_a_field"),
        "error must name the field: {err}"
    );
}
