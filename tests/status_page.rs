//! End to end: `authwatch demo` (authwatch with the embedded demo config, a stand-in identity
//! provider going through a scripted incident, real OTLP client spans) and its status page
//! loaded in a real headless browser (Debian's `chromium`) during the incident. What the page
//! shows (the verdict, the error ratio, the firing alert) must equal the `/api/v1/status`
//! document it was drawn from, which must be one the API served during the test, and must be
//! what the script makes happen. A screenshot is kept in `tests/.artifacts/status_page.png`.
//!
//! Chromium comes from `AUTHWATCH_TEST_CHROMIUM`, else `/usr/bin/chromium` (installed by
//! `scripts/test.sh`); without it the test fails and says how to install it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{free_port, Authwatch, Scratch};

fn chromium() -> PathBuf {
    let p = std::env::var_os("AUTHWATCH_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.exists(),
        "headless Chromium is needed at {} for the status page test: run `apt-get install -y chromium` \
         (scripts/test.sh does) or set AUTHWATCH_TEST_CHROMIUM to a Chromium binary",
        p.display()
    );
    p
}

/// Runs headless Chromium on `url` with `extra` flags; returns its stdout.
fn browse(profile: &Path, url: &str, extra: &[String]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn api(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("GET /api/v1/status")
        .json()
        .await
        .expect("status JSON")
}

fn dependency<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["dependencies"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == name)
}

fn firing_names(s: &Value) -> Vec<String> {
    s["alerts"]["firing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str().map(str::to_owned))
        .collect()
}

/// The value of the first `attr="..."` after `from` in `dom`.
fn attr_after<'a>(dom: &'a str, from: usize, attr: &str) -> Option<&'a str> {
    let needle = format!("{attr}=\"");
    let at = dom[from..].find(&needle)? + from + needle.len();
    let end = dom[at..].find('"')? + at;
    Some(&dom[at..end])
}

/// The text of the element whose opening tag contains `marker`.
fn text_of<'a>(dom: &'a str, marker: &str) -> Option<&'a str> {
    let at = dom.find(marker)?;
    let open_end = dom[at..].find('>')? + at + 1;
    let close = dom[open_end..].find('<')? + open_end;
    Some(&dom[open_end..close])
}

#[tokio::test(flavor = "multi_thread")]
async fn status_page_in_a_browser_shows_the_scripted_incident() {
    chromium();
    let port = free_port();
    let page = format!("http://127.0.0.1:{port}/");
    let api_url = format!("{page}api/v1/status");
    let mut demo = Authwatch::spawn(
        &[
            "demo",
            "--duration",
            "40s",
            "--status-page",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    );
    demo.wait_for_output("authwatch is running", Duration::from_secs(30));
    let out = demo.output();
    assert!(
        out.contains("AUTHWATCH DEMO"),
        "the demo must say it is one:\n{out}"
    );
    assert!(out.contains(&format!("Status page: {page}")), "{out}");

    // Wait for the burst of 5xx to make the error-ratio alert fire (the script: 15%-40% of 40s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let s = api(&api_url).await;
        let verdict = dependency(&s, "demo_idp").map(|d| d["verdict"].clone());
        if firing_names(&s).iter().any(|n| n == "demo_idp_error_ratio")
            && verdict == Some(Value::from("provider_outage"))
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the error-ratio alert did not fire with verdict provider_outage; last status: {s:#}\n{}",
            demo.output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let profile = Scratch::new("chromium");
    let dom = browse(
        &profile.0,
        &page,
        &["--virtual-time-budget=3000".into(), "--dump-dom".into()],
    );
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status_page.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &profile.0,
        &page,
        &[
            "--virtual-time-budget=3000".into(),
            "--window-size=1280,2200".into(),
            format!("--screenshot={}", shot.display()),
        ],
    );
    let after = api(&api_url).await;
    std::fs::write(artifacts.join("status_page.html"), &dom).unwrap();
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "no screenshot at {}",
        shot.display()
    );

    // The JSON the page drew from is embedded in it, and was served by the API between our two
    // calls.
    let marker = "<script type=\"application/json\" id=\"status-data\">";
    let start = dom.find(marker).expect("embedded status JSON") + marker.len();
    let end = dom[start..].find("</script>").unwrap() + start;
    let shown: Value = serde_json::from_str(&dom[start..end]).expect("embedded JSON parses");
    let t = |s: &Value| s["generated_at"].as_f64().unwrap();
    assert!(
        t(&before) <= t(&shown) && t(&shown) <= t(&after),
        "the page's data ({}) must come from the API during the test ({} .. {})",
        t(&shown),
        t(&before),
        t(&after)
    );
    assert!(
        dom.contains("DEMO: authwatch is watching a stand-in"),
        "demo banner"
    );

    // The verdict on the page.
    let card = dom
        .find("data-dependency=\"demo_idp\"")
        .expect("a card for demo_idp on the page");
    let page_verdict = attr_after(&dom, card, "data-verdict").unwrap();
    let json_dep = dependency(&shown, "demo_idp").unwrap();
    assert_eq!(
        page_verdict, json_dep["verdict"],
        "verdict on the page vs its JSON"
    );
    assert_eq!(
        page_verdict, "provider_outage",
        "the script's 5xx burst with an open incident"
    );
    assert!(
        [&before, &after]
            .iter()
            .any(|s| dependency(s, "demo_idp").unwrap()["verdict"] == page_verdict),
        "the API must report the same verdict"
    );

    // The error ratio on the page, for the shortest window.
    let w = dom[card..]
        .find("data-window=\"10s\"")
        .map(|i| i + card)
        .expect("the 10s window on the page");
    let page_ratio: f64 = attr_after(&dom, w, "data-ratio").unwrap().parse().unwrap();
    let json_ratio = json_dep["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["window"] == "10s")
        .unwrap()["error_ratio"]
        .as_f64()
        .unwrap();
    assert!(
        (page_ratio - json_ratio).abs() < 1e-12,
        "ratio {page_ratio} vs JSON {json_ratio}"
    );
    let text = text_of(&dom[w - 200..], "data-window=\"10s\"").unwrap();
    assert_eq!(
        text,
        format!("{:.1}%", json_ratio * 100.0),
        "the ratio as shown"
    );
    assert!(
        page_ratio > 0.2,
        "60% of logins fail in the burst: the 10s error ratio must be above the 0.2 threshold, got {page_ratio}"
    );

    // The firing alert on the page.
    let firing = dom
        .find("id=\"alerts-firing\"")
        .expect("firing alerts section");
    let resolved = dom.find("id=\"alerts-resolved\"").unwrap_or(dom.len());
    let alert = dom[firing..resolved]
        .find("data-alert=\"demo_idp_error_ratio\"")
        .map(|i| i + firing)
        .expect("demo_idp_error_ratio shown as firing");
    assert_eq!(attr_after(&dom, alert, "data-state"), Some("firing"));
    let alert_verdict = attr_after(&dom, alert, "data-verdict").unwrap();
    assert_eq!(alert_verdict, "provider_outage");
    assert!(firing_names(&shown).contains(&"demo_idp_error_ratio".to_owned()));
    assert!(
        firing_names(&after).contains(&"demo_idp_error_ratio".to_owned())
            || firing_names(&before).contains(&"demo_idp_error_ratio".to_owned())
    );
    // Probes and the provider's status are on the page too.
    assert!(dom.contains("data-check=\"login\""), "probe card");
    assert!(
        dom.contains("data-page=\"demo_idp\""),
        "provider status card"
    );

    // The demo runs to its end: alerts resolve, and it exits 0.
    let status = demo.wait(Duration::from_secs(60));
    let out = demo.output();
    assert!(status.success(), "demo exit {status}:\n{out}");
    for needle in [
        "[ALERT FIRING] demo_idp_error_ratio verdict=provider_outage",
        "[ALERT RESOLVED] demo_idp_error_ratio",
        "[ALERT RESOLVED] demo_login_probe_failing",
        "[probe] login: success",
        "[probe] login: http_status",
        "[probe] login: rate_limited",
        "too_many_attempts",
        "[error rate] demo_idp",
        "[provider status] demo_idp: indicator major",
    ] {
        assert!(
            out.contains(needle),
            "the terminal must show {needle:?}:\n{out}"
        );
    }
}
