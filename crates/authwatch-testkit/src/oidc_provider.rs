//! A real, certified OpenID provider on loopback: `oidc-provider` (npm, panva's OpenID
//! Certified implementation) with its built-in login and consent pages, started from
//! `oidc/server.mjs`. It has one public client, [`CLIENT_ID`], with PKCE and the redirect URI
//! [`REDIRECT_URI`]; its login page accepts only [`USERNAME`] / [`PASSWORD`] (the script
//! checks the password that the built-in page ignores).
//!
//! `scripts/test.sh` installs it (`npm ci` in `crates/authwatch-testkit/oidc`). Without Node.js
//! or the package, [`OidcProvider::start`] panics with what to do: the tests fail, they never
//! skip.

use std::path::Path;

use tokio::process::{Child, Command};

pub const CLIENT_ID: &str = "probe-web";
pub const USERNAME: &str = "probe@example.test";
pub const PASSWORD: &str = "p4ss-W0rd-Xy7";
pub const REDIRECT_URI: &str = "https://authwatch.invalid/callback";

/// The running provider; dropping it kills the process.
pub struct OidcProvider {
    _child: Child,
    port: u16,
    issuer: String,
}

impl OidcProvider {
    /// Starts the provider on a free `127.0.0.1` port. `consent`: whether the consent page
    /// appears after the login (else the grant is given without it, as for a first-party app).
    ///
    /// # Panics
    /// When Node.js or the installed package is missing, or it does not start within 120 s (a loaded CI machine starts Node slowly).
    pub async fn start(consent: bool) -> OidcProvider {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "oidc-provider is not installed: run `npm ci` in {} (scripts/test.sh does)",
            dir.display()
        );
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("server.mjs"));
        if !consent {
            cmd.args(["--consent", "skip"]);
        }
        cmd.current_dir(&dir);
        let (child, v) = crate::peer::start(
            cmd,
            "oidc-provider",
            "Install Node.js and run `npm ci` there (scripts/test.sh does).",
        )
        .await;
        OidcProvider {
            _child: child,
            port: v["port"].as_u64().expect("port") as u16,
            issuer: v["issuer"].as_str().expect("issuer").to_owned(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://localhost:<port>` (no trailing slash): the id_token's `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}
