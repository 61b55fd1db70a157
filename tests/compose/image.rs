//! The image against docs/operations.md: the ports it exposes and compose maps (the status
//! page's among them), what it copies, what `.dockerignore` leaves out, and the dependency layer.

use std::collections::BTreeSet;
use std::process::Command;

use serde_yaml::Value;

use super::{assert_ok, compose_file};
use crate::common::{repo, Scratch};

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut out: Vec<String> = Vec::new();
    let mut continued = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || (l.is_empty() && !continued) {
            continue;
        }
        let (body, more) = match l.strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (l, false),
        };
        if continued {
            let last = out.last_mut().unwrap();
            last.push(' ');
            last.push_str(body);
        } else {
            out.push(body.to_owned());
        }
        continued = more;
    }
    out
}

/// The instructions of the stage `FROM ... AS <name>`.
fn stage(instructions: &[String], name: &str) -> Vec<String> {
    let start = instructions
        .iter()
        .position(|i| i.starts_with("FROM ") && i.ends_with(&format!(" AS {name}")))
        .unwrap_or_else(|| panic!("the Dockerfile has no stage `{name}`"));
    instructions[start + 1..]
        .iter()
        .take_while(|i| !i.starts_with("FROM "))
        .cloned()
        .collect()
}

/// Container ports the authwatch service maps (`host:container`).
fn compose_ports() -> BTreeSet<u16> {
    compose_file()["services"]["authwatch"]["ports"]
        .as_sequence()
        .expect("the authwatch service maps ports")
        .iter()
        .map(|p| {
            let spec = p.as_str().expect("ports as \"host:container\"");
            spec.rsplit(':')
                .next()
                .unwrap()
                .parse()
                .expect("a port number")
        })
        .collect()
}

#[test]
fn the_image_exposes_and_compose_maps_the_status_page() {
    let exposed: BTreeSet<u16> = dockerfile()
        .iter()
        .filter_map(|i| i.strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    let mapped = compose_ports();
    assert!(
        exposed.contains(&13134),
        "the Dockerfile must EXPOSE the status page's 13134"
    );
    assert!(mapped.contains(&13134), "docker-compose.yml must map 13134");
    assert_eq!(
        exposed, mapped,
        "the ports the image exposes and the ports compose maps differ"
    );
    // The config compose runs serves the page on every interface, so the mapping reaches it.
    let cmd = &compose_file()["services"]["authwatch"]["command"];
    let file = cmd
        .as_sequence()
        .and_then(|c| {
            c.iter()
                .filter_map(|v| v.as_str())
                .find(|a| a.ends_with(".yaml"))
        })
        .and_then(|p| p.strip_prefix("/etc/authwatch/"))
        .expect("the authwatch service runs a config under /etc/authwatch/");
    let config: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("configs").join(file)).unwrap())
            .unwrap();
    assert_eq!(
        config["extensions"]["status_page"]["endpoint"].as_str(),
        Some("0.0.0.0:13134"),
        "configs/{file} must serve the status page on 0.0.0.0:13134"
    );
    let extensions = config["service"]["extensions"].as_sequence().unwrap();
    assert!(
        extensions.iter().any(|e| e.as_str() == Some("status_page")),
        "configs/{file} must run the status_page extension"
    );
    let docs = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    assert!(
        docs.contains("http://localhost:13134"),
        "docs/operations.md should say where the stack's status page is"
    );
}

#[test]
fn dockerignore_leaves_out_corpora_and_node_modules() {
    let text = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let entries: BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for needed in [
        "target",
        ".git",
        ".venv",
        "**/node_modules",
        "tests/.artifacts",
        "fuzz/corpus",
        "fuzz/artifacts",
        "fuzz/target",
    ] {
        assert!(entries.contains(needed), ".dockerignore lacks `{needed}`");
    }
    // What the Dockerfile copies from the build context exists and is not ignored.
    for i in dockerfile() {
        let Some(args) = i.strip_prefix("COPY ") else {
            continue;
        };
        if args.starts_with("--from=") {
            continue;
        }
        let args: Vec<&str> = args.split_whitespace().collect();
        for src in &args[..args.len() - 1] {
            assert!(
                repo().join(src).exists(),
                "the Dockerfile copies {src}, which does not exist"
            );
            let src = src.trim_end_matches('/');
            assert!(
                !entries
                    .iter()
                    .any(|e| src == *e || src.starts_with(&format!("{e}/"))),
                "the Dockerfile copies {src}, which .dockerignore leaves out"
            );
        }
    }
}

/// The dependency layer: the build stage compiles what the `recipe` stage writes (manifests, the
/// lock file, an empty source per target) before it copies the sources, the recipe names no
/// crate (so a new one needs no edit), and it asks cargo for exactly the units the real tree
/// does, so the second build reuses every dependency.
#[test]
fn the_dockerfile_builds_dependencies_in_their_own_layer() {
    let instructions = dockerfile();
    let build = stage(&instructions, "build");
    let at = |what: &str| {
        build
            .iter()
            .position(|i| i.starts_with(what))
            .unwrap_or_else(|| panic!("the build stage has no `{what}`: {build:#?}"))
    };
    let (recipe, deps, sources) = (
        at("COPY --from=recipe "),
        at("RUN cargo build"),
        at("COPY . ."),
    );
    assert!(
        recipe < deps && deps < sources,
        "the build stage must copy the recipe, build, then copy the sources: {build:#?}"
    );
    assert!(
        build[sources + 1..]
            .iter()
            .any(|i| i.contains("cargo build")),
        "the build stage builds again after copying the sources"
    );
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    for entry in std::fs::read_dir(repo().join("crates")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !text.contains(&format!("crates/{name}")),
            "the Dockerfile names crates/{name}: find the crates by glob so that a new one needs no edit"
        );
    }

    // Run the recipe stage's RUN here, writing into a scratch directory instead of /recipe.
    let script = stage(&instructions, "recipe")
        .iter()
        .filter_map(|i| i.strip_prefix("RUN "))
        .collect::<Vec<_>>()
        .join(" && ");
    let scratch = Scratch::new("recipe");
    let out_dir = scratch.0.join("recipe");
    let out = Command::new("bash")
        .args(["-c", &script.replace("/recipe", out_dir.to_str().unwrap())])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_ok("the recipe stage's RUN", &out);
    let units = |root: &std::path::Path| -> BTreeSet<String> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "build",
                "-Z",
                "unstable-options",
                "--unit-graph",
                "--release",
            ])
            .args(["--locked", "--offline", "--bin", "authwatch"])
            .env("RUSTC_BOOTSTRAP", "1") // --unit-graph is unstable: plan, never build
            .env("CARGO_TARGET_DIR", scratch.0.join("target"))
            .current_dir(root)
            .output()
            .unwrap();
        assert_ok(
            &format!("cargo build --unit-graph in {}", root.display()),
            &out,
        );
        let graph: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let root = format!("file://{}", root.display());
        graph["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                format!(
                    "{} {} {} {}",
                    u["pkg_id"].as_str().unwrap().replace(&root, ""),
                    u["target"]["name"],
                    u["mode"],
                    u["features"]
                )
            })
            .collect()
    };
    let (real, stubbed) = (units(&repo()), units(&out_dir));
    assert!(real.len() > 100, "{} units", real.len());
    assert_eq!(
        real.symmetric_difference(&stubbed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "the dependency layer would build other units than the real build"
    );
}
