//! The stand-in provider's signing key. PUBLIC ON PURPOSE: it signs only the tokens of the
//! local stand-in that `authwatch demo` runs on loopback, and nothing ever trusts it. (`ring`,
//! which `jsonwebtoken` signs with, cannot generate RSA keys, and the demo issues RS256 tokens
//! as Auth0 does by default.)

/// PKCS#1 DER of a 2048-bit RSA key, base64, split into lines.
pub(super) const DEMO_RSA_PKCS1_DER_B64: &[&str] = &[
    "MIIEpQIBAAKCAQEA0Uez/I2Pv9FfVazCx/I/EjuDrfgNj6BZ6dK1dxoGQmaVQHjE81RURzObwQeNwDJJvHitEpGHtjJDKn+Y",
    "JJSKd9tgolmKYtCLnYu+NzvOPo32eGaFzhpIUXocG+nsmRxaZRm1xf7Yi8H0sKQ5/nudIuLnu3I01zsECbH7/5uL46eOW+KM",
    "j9mHETzvdDc59O+mG08HN76+RmxYC6T8cMzJE3EjDMbNdUz8OrxiEJRYAv0chX2kQlC0t+bpvNWJkbdZ/NyA7hwew1ab6Wac",
    "pCvmC4q0agRWt1hEChXZcOa5Plv4PiTIcjkaNmpxGPDnLLG3pjWM69b2WB34T0tp0Eur1wIDAQABAoIBADyx/fpOGBW6pFqV",
    "qzwP/sjL5+nJmi1AhTMyQBzVuGEDnV/AZuZnW7X2usJl7W+DZi06Fn/fIyvtMduee8KILgyK3GDZdTApaYR8peMg/jTYOVY7",
    "7ayTpMu0jXhvBIZ3WaQeq8BLpAQMcWnVh1hOA4m9oxWTDs4pOIeTThGYzB5u0KNfjxF0+dxF8pQV6bNCfEwb5wCqXcIQ4k3v",
    "OJOTlI/K+JZuUS4wOmdt3Z6apKw56ucjBwvryzlbNVTWRjnVVxIG/WNtKQW8QkpGWoAOufYG2MTHLMKj3+51q5zF684uf7+x",
    "xjCMdiHnJlatUE1S/VJa2oYNiYoyAxoQjiIeLokCgYEA7hwsUeZ51Chc8h/f26uXqU043eR2db4Gq1/R97kUE6P8RNt2dQ4N",
    "AbC8ODzP3cdyqcvC201Ijm1x4GvSH19v54pK9LxycX4KBDcfIWJ6vG8Kg22asJowWB18ncIzt2a1Z3QhAq2H/4gQ2cxaNTTK",
    "0AkQaE6gRsZJB0BZKLQIdX0CgYEA4QEDJKBnLuY82E2x0EwCDLCrDoBe5ECZqKWAGRyuUo50T4NW80KHV2kXyXBPl5idfb4A",
    "CeduOiDVP2f/DNRr4ZmWLN7ISQLM4b2A42C1G88owVJl1HnJBtf7upsN/ny/AyLOlgtXB5q8VyZlYvBUIJvc+q/vL5R6Swq4",
    "xGT51uMCgYEAwwjeoKMpLUd2gnjrUzKlQm7XYqGNCnqBWgRdpwy5TjEnJHui9tRwgO7z7Riapy2EVWJqlFkkUk2BVnLapQn2",
    "TnCvXvGwyBeWOsevvxe8Mva9ZNP1Piy95p8YgNweol4FvtyXYWskl4ErVEsXpLc+XNLf1qB4liA6ly71GOsGdr0CgYEAo2M+",
    "ywwHoZDjQhc5Ng7btidcL82cGpemfUag/JtNIvn7D/pJ25/F8/2GnmqGAYl7Y+Hi2U5LRr6s27xDAygFpu8GlFK6kfoMmSgp",
    "PfPtz+HgsHGLLH27MtMIIvuRb+laM4bFCUP20LjWZ1qkaPInxP4pu4iiYaSqIXAJt+OzYQ0CgYEAogipk2+auwN7j/IG2bwF",
    "s5nt1MXAyi0cuV3e0hAJRZ4cpuODT+WJ8RQZ+5opiSDpD8zWpOWgr6A3pkLefcXKB+8jeUbR+CjJPcNLUlLzDc2+CZAyJOpI",
    "ZaVZw6tG/pYHnFHvuPoXD5TEtTGH3y45bOmic0zDD07VCcABCYSpIjw=",
];

/// The key's modulus, base64url without padding (the JWK `n`).
pub(super) const DEMO_RSA_N: &str = "0Uez_I2Pv9FfVazCx_I_EjuDrfgNj6BZ6dK1dxoGQmaVQHjE81RURzObwQeNwDJJvHitEpGHtjJDKn-YJJSKd9tgolmKYtCLnYu-NzvOPo32eGaFzhpIUXocG-nsmRxaZRm1xf7Yi8H0sKQ5_nudIuLnu3I01zsECbH7_5uL46eOW-KMj9mHETzvdDc59O-mG08HN76-RmxYC6T8cMzJE3EjDMbNdUz8OrxiEJRYAv0chX2kQlC0t-bpvNWJkbdZ_NyA7hwew1ab6WacpCvmC4q0agRWt1hEChXZcOa5Plv4PiTIcjkaNmpxGPDnLLG3pjWM69b2WB34T0tp0Eur1w";
/// The key's public exponent (the JWK `e`).
pub(super) const DEMO_RSA_E: &str = "AQAB";
/// The key id in tokens and the JWKS.
pub(super) const DEMO_KID: &str = "authwatch-demo-1";
