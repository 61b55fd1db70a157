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
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
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
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start `node` (install nodejs; scripts/test.sh does): {e}")
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(120), lines.next_line()).await;
        let Ok(Ok(Some(line))) = first else {
            let _ = child.start_kill();
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), stderr.read_to_string(&mut err))
                        .await;
            }
            panic!("oidc-provider did not start ({first:?}). Its stderr:\n{err}");
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(_)) = lines.next_line().await {}
            });
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("unexpected first line from oidc-provider: {line}: {e}"));
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
