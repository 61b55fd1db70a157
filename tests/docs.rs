//! The documentation, checked against the code:
//!
//! - `docs/reference/` holds one page per registered component, generated from the registry
//!   (each crate's `factories()`: kind and type) and the component's module doc (`//!` lines of
//!   `crates/authwatch-<crate>/src/<type>/mod.rs`). `AUTHWATCH_BLESS=1 cargo test --test docs`
//!   rewrites it; without the variable a stale, missing or orphaned page fails, by name.
//! - Every relative link (file and `#anchor`) in README.md and docs/**/*.md resolves, and the
//!   README stays a front door (at most 300 lines).
//! - Every ```yaml block in them is a config authwatch accepts. A whole config (pipelines under
//!   `service:`, every component they name defined) passes `authwatch validate`. A fragment (no
//!   pipelines, e.g. one component's options) or an excerpt (pipelines naming components the
//!   block leaves out) has every component it defines decoded and validated through the registry
//!   by the same command, and every component it only names must be a registered type. A block
//!   of `service` settings alone (telemetry, extensions) is validated on top of a minimal
//!   pipeline. A block whose first line is `# not an authwatch config` is skipped.
//! - Every registered receiver has a fuzz target for the outside input it decodes, or a stated
//!   reason why none applies (the table in fuzz/README.md).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use authwatch_core::{Factories, Factory, Kind};
use common::{repo, run_cli, Scratch};

const BLESS: &str = "AUTHWATCH_BLESS";
const REGENERATE: &str = "AUTHWATCH_BLESS=1 cargo test --test docs";

#[path = "docs/markdown.rs"]
mod markdown;

use markdown::{anchors, env_references, link_targets, normalize, prose_lines, yaml_blocks};

// === the registry ===

/// Every registered component with the crate folder it lives in (`receiver` for
/// `crates/authwatch-receiver`). Connectors live in the processor crate.
fn registered() -> Vec<(&'static str, Factory)> {
    let crates: [(&str, Factories); 4] = [
        ("receiver", authwatch_receiver::factories()),
        ("processor", authwatch_processor::factories()),
        ("exporter", authwatch_exporter::factories()),
        ("extension", authwatch_extension::factories()),
    ];
    crates
        .into_iter()
        .flat_map(|(dir, f)| f.all().into_iter().map(move |f| (dir, f)))
        .collect()
}

/// The crates [`registered`] reads are every crate that registers components.
#[test]
fn every_component_crate_is_read() {
    let read: BTreeSet<String> = ["receiver", "processor", "exporter", "extension"]
        .iter()
        .map(|c| format!("authwatch-{c}"))
        .collect();
    for entry in std::fs::read_dir(repo().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap_or_default();
        if lib.contains("components!(") {
            assert!(
                read.contains(&name),
                "crates/{name} registers components: add its `factories()` to `registered()` in tests/docs.rs"
            );
        }
    }
}

/// `crates/authwatch-<crate>/src/<type>/mod.rs`, or `<type>.rs`.
fn module_file(crate_dir: &str, ty: &str) -> Option<PathBuf> {
    let src = repo().join(format!("crates/authwatch-{crate_dir}/src"));
    [src.join(ty).join("mod.rs"), src.join(format!("{ty}.rs"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// The module doc: every `//!` line, without the marker and one following space.
fn module_doc(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let mut doc = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("//!") {
            doc.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            doc.push('\n');
        }
    }
    doc
}

/// The first sentence of the first paragraph that is not a heading.
fn summary(doc: &str) -> String {
    let paragraph = doc
        .split("\n\n")
        .map(str::trim)
        .find(|p| !p.is_empty() && !p.starts_with('#'))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let end = paragraph
        .match_indices(". ")
        .find(|(i, _)| {
            paragraph[i + 2..]
                .chars()
                .next()
                .is_some_and(|c| c.is_uppercase())
        })
        .map(|(i, _)| i + 1)
        .unwrap_or(paragraph.len());
    paragraph[..end].replace('|', "\\|")
}

#[test]
fn summary_is_the_first_sentence() {
    assert_eq!(
        summary("# T\n\nOne thing, e.g. this. Two.\n\nThree.\n"),
        "One thing, e.g. this."
    );
    assert_eq!(
        summary("`a` exporter: sends | pipes.\n"),
        "`a` exporter: sends \\| pipes."
    );
}

// === docs/reference ===

/// What docs/reference should hold (path relative to it → text), and the components whose
/// module doc cannot make a page.
fn generate_reference() -> (BTreeMap<String, String>, Vec<String>) {
    let mut pages = BTreeMap::new();
    let mut problems = Vec::new();
    let mut index = format!(
        "<!-- Generated by `{REGENERATE}` from the component registry and each component's module \
         doc. Do not edit. -->\n\n\
         # Component reference\n\n\
         One page per registered component, written from the module doc of its folder \
         (`crates/authwatch-<crate>/src/<type>/mod.rs`). `authwatch components` lists the same \
         types. Guides that go further are listed in [docs/README.md](../README.md).\n\n\
         | kind | type | what it does |\n| --- | --- | --- |\n"
    );
    for (crate_dir, f) in registered() {
        let (kind, ty) = (f.kind.as_str(), f.type_name);
        let Some(file) = module_file(crate_dir, ty) else {
            problems.push(format!(
                "{kind} `{ty}`: no module at crates/authwatch-{crate_dir}/src/{ty}/mod.rs to read its docs from"
            ));
            continue;
        };
        let rel = file.strip_prefix(repo()).unwrap().display().to_string();
        let doc = module_doc(&file);
        if doc.lines().filter(|l| !l.trim().is_empty()).count() < 5 {
            problems.push(format!(
                "{kind} `{ty}` has no reference page: the module doc (`//!` lines) of {rel} is {}; \
                 write what the component does, a config example and its options there, then run `{REGENERATE}`",
                if doc.trim().is_empty() { "missing" } else { "too thin" }
            ));
            continue;
        }
        let aliases = if f.aliases.is_empty() {
            String::new()
        } else {
            let a: Vec<String> = f.aliases.iter().map(|a| format!("`{a}`")).collect();
            format!(" (alias {})", a.join(", "))
        };
        index.push_str(&format!(
            "| {kind} | [`{ty}`]({kind}/{ty}.md){aliases} | {} |\n",
            summary(&doc)
        ));
        pages.insert(
            format!("{kind}/{ty}.md"),
            format!(
                "<!-- Generated by `{REGENERATE}` from the module doc of {rel}: edit that, not this file. -->\n\n{doc}"
            ),
        );
    }
    pages.insert("README.md".into(), index);
    (pages, problems)
}

fn read_tree(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_tree(root, &path, out);
        } else {
            let key = path.strip_prefix(root).unwrap().display().to_string();
            out.insert(key, std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

#[test]
fn component_reference_is_generated_from_the_registry() {
    let root = repo().join("docs/reference");
    let (generated, mut problems) = generate_reference();
    let mut committed = BTreeMap::new();
    read_tree(&root, &root, &mut committed);
    if std::env::var_os(BLESS).is_some() {
        for stale in committed.keys().filter(|k| !generated.contains_key(*k)) {
            std::fs::remove_file(root.join(stale)).unwrap();
        }
        for (k, text) in &generated {
            let path = root.join(k);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    } else {
        for (k, text) in &generated {
            match committed.get(k) {
                None => problems.push(format!("docs/reference/{k} is missing")),
                Some(c) if c != text => problems.push(format!("docs/reference/{k} is stale")),
                Some(_) => {}
            }
        }
        for k in committed.keys().filter(|k| !generated.contains_key(*k)) {
            problems.push(format!(
                "docs/reference/{k} belongs to no registered component"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the component reference does not match the registry:\n  {}\n\
         (the pages are written from the module docs by `{REGENERATE}`)",
        problems.join("\n  ")
    );
}

// === markdown ===

/// README.md and every .md under docs/.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![repo().join("README.md")];
    walk(&repo().join("docs"), &mut files);
    files.sort();
    files
}

fn rel(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                    continue;
                }
                checked += 1;
                let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let dest = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap().join(path)
                };
                let dest = normalize(&dest);
                let at = format!("{}:{n}: `{target}`", rel(&file));
                if !dest.exists() {
                    broken.push(format!("{at}: {} does not exist", rel(&dest)));
                    continue;
                }
                if !anchor.is_empty() && dest.extension().is_some_and(|e| e == "md") {
                    let dest_text = std::fs::read_to_string(&dest).unwrap();
                    if !anchors(&dest_text).contains(anchor) {
                        broken.push(format!("{at}: {} has no heading `#{anchor}`", rel(&dest)));
                    }
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the parser broken?"
    );
    assert!(
        broken.is_empty(),
        "broken links:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn readme_is_a_front_door() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines; keep it at most 300 and move reference material under docs/"
    );
    // The two set-up commands: authwatch on its embedded default, and the whole test suite
    // (what .ci/run runs).
    for command in [
        "cargo build --release && ./target/release/authwatch",
        "bash scripts/test.sh",
    ] {
        assert!(readme.contains(command), "README.md lost `{command}`");
    }
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.contains("scripts/test.sh"),
        ".ci/run runs the README's test command"
    );
}

// === config examples ===

/// Values for the `${env:NAME}` references of the examples (references with a default need none).
const SAMPLE_ENV: &[(&str, &str)] = &[
    ("AUTH0_DOMAIN", "tenant.us.auth0.com"),
    ("AUTH0_CLIENT_ID", "client-id"),
    ("AUTH0_CLIENT_SECRET", "client-secret"),
    ("AUTH0_PROBE_PASSWORD", "probe-password"),
    ("AUTH0_WEB_CLIENT_ID", "web-client-id"),
    (
        "AUTH0_PROBE_TOTP_SECRET",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    ),
    ("AUTH0_LOG_STREAM_TOKEN", "log-stream-token"),
    ("AUTH0_LOGS_CLIENT_ID", "logs-client-id"),
    ("AUTH0_LOGS_CLIENT_SECRET", "logs-client-secret"),
    ("OKTA_API_TOKEN", "okta-api-token"),
    ("HONEYCOMB_API_KEY", "honeycomb-key"),
    ("OTLP_BEARER_TOKEN", "otlp-token"),
    ("WEBHOOK_TOKEN", "webhook-token"),
    ("HOOK_KEY", "hook-key"),
    ("AM_TOKEN", "alertmanager-token"),
    ("API_KEY", "api-key"),
];

const SECTIONS: [&str; 6] = [
    "receivers",
    "processors",
    "exporters",
    "connectors",
    "extensions",
    "service",
];

/// The component ids a block's `service` section names that the block does not define, each
/// with the kinds it may be (a pipeline's receivers are receivers or connectors, ...).
fn undefined_references(top: &serde_yaml::Mapping) -> Vec<(String, &'static [Kind])> {
    use Kind::*;
    let defined = |section: &str, id: &str| {
        top.get(section)
            .and_then(|s| s.as_mapping())
            .is_some_and(|m| m.contains_key(id))
    };
    let mut out = Vec::new();
    let service = top.get("service");
    let mut check = |ids: Option<&serde_yaml::Value>, kinds: &'static [Kind]| {
        for id in ids.and_then(|v| v.as_sequence()).into_iter().flatten() {
            let id = id.as_str().unwrap_or_default();
            if !kinds.iter().any(|k| defined(k.section(), id)) {
                out.push((id.to_owned(), kinds));
            }
        }
    };
    check(service.and_then(|s| s.get("extensions")), &[Extension]);
    let pipelines = service
        .and_then(|s| s.get("pipelines"))
        .and_then(|p| p.as_mapping());
    for p in pipelines.into_iter().flat_map(|m| m.values()) {
        check(p.get("receivers"), &[Receiver, Connector]);
        check(p.get("processors"), &[Processor]);
        check(p.get("exporters"), &[Exporter, Connector]);
    }
    out
}

/// Module-doc examples that are wrong today: (page, text every problem of its examples names,
/// what is wrong). Module docs are edited elsewhere, so these wait for a fix there. Any other
/// problem in the page still fails, and so does a listed page whose examples are all accepted,
/// so that its entry goes.
const KNOWN_WRONG: &[(&str, &str, &str)] = &[];

/// What a block that holds only `service` settings is checked on top of.
const SERVICE_BASE: &str = "receivers: { otlp: {} }\nexporters: { debug: {} }\nservice: { pipelines: { traces: { receivers: [otlp], exporters: [debug] } } }\n";

/// How a block was checked.
enum Checked {
    Whole,
    Partial,
    Skipped,
}

/// Checks one ```yaml block (see the file's doc); the problems found, if any.
fn check_block(
    block: &str,
    path: &Path,
    factories: &[(&'static str, Factory)],
) -> Result<Checked, Vec<String>> {
    if block.trim_start().starts_with("# not an authwatch config") {
        return Ok(Checked::Skipped);
    }
    let value: serde_yaml::Value =
        serde_yaml::from_str(block).map_err(|e| vec![format!("not YAML: {e}")])?;
    let top = value
        .as_mapping()
        .ok_or_else(|| vec!["not a mapping of config sections".to_owned()])?;
    let keys: Vec<&str> = top.keys().filter_map(|k| k.as_str()).collect();
    if let Some(k) = keys.iter().find(|k| !SECTIONS.contains(k)) {
        return Err(vec![format!(
            "`{k}` is not a config section; start the block with `# not an authwatch config` if it is not one"
        )]);
    }
    let service_only = keys.iter().all(|k| *k == "service");
    if service_only && value["service"]["pipelines"].is_mapping() {
        return Err(vec!["defines no component".to_owned()]);
    }
    let mut problems = Vec::new();
    let mut env = Vec::new();
    for name in env_references(block) {
        match SAMPLE_ENV.iter().find(|(n, _)| *n == name) {
            Some(pair) => env.push(*pair),
            None => problems.push(format!(
                "`${{env:{name}}}` has no sample value: add one to SAMPLE_ENV in tests/docs.rs"
            )),
        }
    }
    std::fs::write(path, block).unwrap();
    if service_only {
        // Service settings (telemetry, extensions, shutdown): checked on top of a minimal
        // pipeline, as an overlay would be.
        let base = path.with_extension("base.yaml");
        std::fs::write(&base, SERVICE_BASE).unwrap();
        let (code, out, err) = run_cli(
            &[
                "validate",
                "--config",
                base.to_str().unwrap(),
                "--config",
                path.to_str().unwrap(),
            ],
            &env,
        );
        if code != 0 {
            problems.push(format!(
                "`authwatch validate` refuses it on a minimal pipeline:\n{out}{err}"
            ));
        }
        return if problems.is_empty() {
            Ok(Checked::Whole)
        } else {
            Err(problems)
        };
    }
    let (code, out, err) = run_cli(&["validate", "--config", path.to_str().unwrap()], &env);
    let has_pipelines = value["service"]["pipelines"].is_mapping();
    let undefined = undefined_references(top);
    let checked = if has_pipelines && undefined.is_empty() {
        if code != 0 {
            problems.push(format!("`authwatch validate` refuses it:\n{out}{err}"));
        }
        Checked::Whole
    } else {
        // A fragment, or an excerpt whose pipelines name components it leaves out: each
        // component it defines must be accepted, each it only names must exist.
        for (id, kinds) in &undefined {
            let ty = id.split('/').next().unwrap_or_default();
            let known = factories.iter().any(|(_, f)| {
                kinds.contains(&f.kind) && (f.type_name == ty || f.aliases.contains(&ty))
            });
            if !known {
                let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                problems.push(format!("`{id}` is no registered {}", kinds.join(" or ")));
            }
        }
        let refused: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("error: ") && !l.starts_with("error: service"))
            .collect();
        if !refused.is_empty() || (code != 0 && code != 64) {
            problems.push(format!("a component is refused:\n{out}{err}"));
        }
        Checked::Partial
    };
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems)
    }
}

#[test]
fn every_config_example_is_accepted() {
    let scratch = Scratch::new("docs-yaml");
    let factories = registered();
    let mut failures = Vec::new();
    let mut known_wrong_seen = BTreeSet::new();
    let (mut whole, mut partial, mut skipped) = (0, 0, 0);
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, block) in yaml_blocks(&text) {
            let n = whole + partial + skipped;
            let path = scratch.0.join(format!("block-{n}.yaml"));
            match check_block(&block, &path, &factories) {
                Ok(Checked::Whole) => whole += 1,
                Ok(Checked::Partial) => partial += 1,
                Ok(Checked::Skipped) => skipped += 1,
                Err(problems)
                    if KNOWN_WRONG.iter().any(|(page, needle, _)| {
                        rel(&file) == *page && problems.iter().all(|p| p.contains(needle))
                    }) =>
                {
                    known_wrong_seen.insert(rel(&file));
                }
                Err(problems) => {
                    for p in problems {
                        failures.push(format!("{}:{line}: {p}", rel(&file)));
                    }
                }
            }
        }
    }
    for (page, _, what) in KNOWN_WRONG {
        if !known_wrong_seen.contains(*page) {
            failures.push(format!(
                "{page}: KNOWN_WRONG says its example is wrong ({what}), but its examples no \
                 longer fail with that alone: update or remove the entry"
            ));
        }
    }
    assert!(
        whole >= 5 && partial >= 10,
        "found only {whole} whole configs and {partial} fragments or excerpts ({skipped} skipped)"
    );
    assert!(
        failures.is_empty(),
        "config examples:\n  {}",
        failures.join("\n  ")
    );
}

// === fuzz wiring ===

/// fuzz/README.md's "Receivers and their targets" table: receiver → its row's targets cell.
fn fuzz_table() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("fuzz/README.md")).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Receivers and their targets"))
        .expect("fuzz/README.md has a `## Receivers and their targets` section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            let receiver = cells.first()?.trim_matches('`').to_owned();
            Some((receiver, cells.last()?.to_string()))
        })
        .collect()
}

fn fuzz_targets() -> BTreeSet<String> {
    let manifest = std::fs::read_to_string(repo().join("fuzz/Cargo.toml")).unwrap();
    manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|bin| {
            bin.lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .map(|n| n.trim_end_matches('"').to_owned())
        })
        .collect()
}

#[test]
fn every_receiver_has_a_fuzz_target_or_a_reason() {
    let table = fuzz_table();
    let targets = fuzz_targets();
    assert!(targets.len() >= 5, "fuzz/Cargo.toml declares {targets:?}");
    let receivers: BTreeSet<&str> = registered()
        .iter()
        .filter(|(_, f)| f.kind == authwatch_core::Kind::Receiver)
        .map(|(_, f)| f.type_name)
        .collect();
    let mut problems = Vec::new();
    for r in &receivers {
        let Some(cell) = table.get(*r) else {
            problems.push(format!(
                "receiver `{r}` has no row in fuzz/README.md's \"Receivers and their targets\": \
                 add a cargo-fuzz target for the outside input it decodes (fuzz/fuzz_targets/, \
                 fuzz/Cargo.toml) and name it there, or write `none: <why>`"
            ));
            continue;
        };
        if let Some(reason) = cell.strip_prefix("none:") {
            if reason.trim().len() < 10 {
                problems.push(format!("receiver `{r}`: say why no fuzz target applies"));
            }
            continue;
        }
        let named: Vec<&str> = cell
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .collect();
        if named.is_empty() {
            problems.push(format!("receiver `{r}`: its row names no target"));
        }
        for t in named {
            if !targets.contains(t) {
                problems.push(format!(
                    "receiver `{r}`: fuzz target `{t}` is not declared in fuzz/Cargo.toml"
                ));
            }
        }
    }
    for r in table.keys().filter(|r| !receivers.contains(r.as_str())) {
        problems.push(format!(
            "fuzz/README.md lists `{r}`, which is not a registered receiver"
        ));
    }
    for t in &targets {
        if !repo().join(format!("fuzz/fuzz_targets/{t}.rs")).is_file() {
            problems.push(format!("fuzz target `{t}` has no fuzz/fuzz_targets/{t}.rs"));
        }
    }
    assert!(
        problems.is_empty(),
        "fuzz wiring:\n  {}",
        problems.join("\n  ")
    );
}
