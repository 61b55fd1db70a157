//! [`string_newtype!`]: a config newtype written as a string ("parse, don't validate").

/// Implements `FromStr`, `Display`, `Serialize` and `Deserialize` for a config newtype from its
/// parse rule, so that each newtype is that rule plus one line, and a bad value is reported by
/// serde at its exact config path with the rule's message:
///
/// ```
/// use std::net::SocketAddr;
///
/// #[derive(Debug, Clone, PartialEq)]
/// pub struct Peer(SocketAddr);
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("invalid peer `{0}`: write it as ip:port")]
/// pub struct PeerError(String);
///
/// fn parse_peer(s: &str) -> Result<Peer, PeerError> {
///     s.parse().map(Peer).map_err(|_| PeerError(s.to_owned()))
/// }
///
/// authwatch_net::string_newtype!(Peer, error = PeerError, parse = parse_peer, display = |p| p.0);
///
/// let p: Peer = serde_json::from_str(r#""127.0.0.1:80""#).unwrap();
/// assert_eq!(p.to_string(), "127.0.0.1:80");
/// assert_eq!(serde_json::to_string(&p).unwrap(), r#""127.0.0.1:80""#);
/// let e = serde_json::from_str::<Peer>(r#""nope""#).unwrap_err();
/// assert!(e.to_string().starts_with("invalid peer `nope`: write it as ip:port"));
/// ```
///
/// - `error`: the rule's error type (`Display` is the config error message);
/// - `parse`: `fn(&str) -> Result<Type, Error>`, the rule (it may trim or normalise);
/// - `display = |v| expr`: what the value prints (and serializes) as; `expr` implements
///   `Display`.
#[macro_export]
macro_rules! string_newtype {
    ($ty:ident, error = $err:ty, parse = $parse:expr, display = |$v:ident| $show:expr $(,)?) => {
        impl ::std::str::FromStr for $ty {
            type Err = $err;

            fn from_str(s: &str) -> ::std::result::Result<Self, $err> {
                let parse: fn(&str) -> ::std::result::Result<$ty, $err> = $parse;
                parse(s)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let $v = self;
                ::std::fmt::Display::fmt(&$show, f)
            }
        }

        impl $crate::__private::serde::Serialize for $ty {
            fn serialize<S>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error>
            where
                S: $crate::__private::serde::Serializer,
            {
                s.collect_str(self)
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $ty {
            fn deserialize<D>(d: D) -> ::std::result::Result<Self, D::Error>
            where
                D: $crate::__private::serde::Deserializer<'de>,
            {
                let s: ::std::string::String =
                    $crate::__private::serde::Deserialize::deserialize(d)?;
                s.parse()
                    .map_err($crate::__private::serde::de::Error::custom)
            }
        }
    };
}
