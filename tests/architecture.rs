//! The house rules that keep authwatch one house (STYLE.md §1, §5, §9), checked on the sources:
//! component crates depend on core and the networking crate only; no component module imports
//! another component's module; no `Result<_, String>` in a public function; no module cycle in
//! core or service; no source file over 600 lines of non-test code. Each failure names the file
//! and what to do.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates that hold components, with the registry that lists them.
fn component_crates() -> Vec<(&'static str, Vec<String>)> {
    let types = |f: authwatch_core::Factories| -> Vec<String> {
        f.all().iter().map(|fac| fac.type_name.to_owned()).collect()
    };
    vec![
        ("authwatch-receiver", types(authwatch_receiver::factories())),
        (
            "authwatch-processor",
            types(authwatch_processor::factories()),
        ),
        ("authwatch-exporter", types(authwatch_exporter::factories())),
        (
            "authwatch-extension",
            types(authwatch_extension::factories()),
        ),
    ]
}

fn crate_dir(name: &str) -> PathBuf {
    common::repo().join("crates").join(name)
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(common::repo())
        .unwrap_or(p)
        .display()
        .to_string()
}

/// Whether a file holds tests only (`tests.rs`, `*_tests.rs`, anything under a `tests/` folder).
fn is_test_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || p.components()
            .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "benches")
}

/// The file's code before its `#[cfg(test)]` module, without the module docs (`//!`, which are
/// the generated reference page) and blank lines.
fn non_test_code(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut iter = text.lines().peekable();
    while let Some(l) = iter.next() {
        if l.starts_with("#[cfg(test)]") {
            if let Some(next) = iter.peek() {
                if next.starts_with("mod ") || next.starts_with("pub(crate) mod ") {
                    break;
                }
            }
        }
        let t = l.trim_start();
        if t.is_empty() || t.starts_with("//!") {
            continue;
        }
        lines.push(l);
    }
    lines
}

#[test]
fn component_crates_depend_on_core_and_net_only() {
    let forbidden = [
        "authwatch-receiver",
        "authwatch-processor",
        "authwatch-exporter",
        "authwatch-extension",
        "authwatch-service",
        "authwatch-demo",
        "authwatch-testkit",
        "authwatch-loadgen",
    ];
    let mut problems = Vec::new();
    for (krate, _) in component_crates() {
        let manifest = std::fs::read_to_string(crate_dir(krate).join("Cargo.toml")).unwrap();
        let doc: toml_lite::Doc = toml_lite::parse(&manifest);
        for dep in doc.table_keys("dependencies") {
            if forbidden.contains(&dep.as_str()) {
                problems.push(format!(
                    "{krate} depends on {dep}: component crates depend on authwatch-core and authwatch-net only; move what they share down into one of those"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_component_module_imports_another() {
    let mut problems = Vec::new();
    for (krate, types) in component_crates() {
        let src = crate_dir(krate).join("src");
        for ty in &types {
            let mut files = rust_files(&src.join(ty));
            let single = src.join(format!("{ty}.rs"));
            if single.exists() {
                files.push(single);
            }
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap();
                for other in types.iter().filter(|o| *o != ty) {
                    for pattern in [format!("crate::{other}::"), format!("crate::{other};")] {
                        if text.contains(&pattern) {
                            problems.push(format!(
                                "{}: the `{ty}` component uses `crate::{other}`: components never lean on each other; move what both need into authwatch-core, authwatch-net or a shared helper module named for what it is",
                                rel(&f)
                            ));
                        }
                    }
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_string_errors_in_public_functions() {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(common::repo().join("crates")).unwrap() {
        let dir = entry.unwrap().path().join("src");
        for f in rust_files(&dir) {
            if is_test_file(&f) {
                continue;
            }
            let code = code_only(&std::fs::read_to_string(&f).unwrap());
            // Each public function's signature, from `pub fn` to its body or `;`.
            let mut rest = code.as_str();
            while let Some(at) = rest.find("pub fn ") {
                let sig_end = rest[at..].find(['{', ';']).map_or(rest.len(), |e| at + e);
                let sig: String = rest[at..sig_end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                if sig.contains(", String>") && sig.contains("Result<") {
                    let name = sig
                        .trim_start_matches("pub fn ")
                        .split(['(', '<'])
                        .next()
                        .unwrap_or("");
                    problems.push(format!(
                        "{}: `pub fn {name}` returns a `Result<_, String>`: give it a thiserror enum",
                        rel(&f)
                    ));
                }
                rest = &rest[sig_end..];
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The code of a file without its `#[cfg(test)] mod tests` and without comment lines.
fn code_only(text: &str) -> String {
    let code = text.split("\n#[cfg(test)]\nmod tests").next().unwrap_or("");
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module-level `crate::x` edges between the top-level modules of a crate (comments aside).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in rust_files(src) {
        if is_test_file(&f) {
            continue;
        }
        let relp = f.strip_prefix(src).unwrap();
        let top = relp
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        let edges = graph.entry(top.clone()).or_default();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `$crate::` in macros and `crate::` in docs of other crates do not count.
            let before = &rest[..at];
            let in_macro = before.ends_with('$');
            let is_module = !name.is_empty()
                && (src.join(format!("{name}.rs")).exists()
                    || src.join(&name).join("mod.rs").exists());
            if is_module && name != top && !in_macro {
                edges.insert(name);
            }
            rest = after;
        }
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_owned());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn core_and_service_have_no_module_cycles() {
    for krate in ["authwatch-core", "authwatch-service", "authwatch-net"] {
        let src = crate_dir(krate).join("src");
        if !src.exists() {
            continue;
        }
        let graph = module_graph(&src);
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "{krate} has a module cycle: {}; move what both sides need into a module of its own",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

/// Past this many lines of non-test code a file usually holds two concerns (STYLE.md §9).
const MAX_LINES: usize = 600;

#[test]
fn no_source_file_is_over_600_lines_of_code() {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(common::repo().join("crates")).unwrap() {
        let dir = entry.unwrap().path().join("src");
        for f in rust_files(&dir) {
            if is_test_file(&f) {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let n = non_test_code(&text).len();
            if n > MAX_LINES {
                problems.push(format!(
                    "{}: {n} lines of non-test code (over {MAX_LINES}): split it by concern",
                    rel(&f)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Just enough TOML to list a manifest table's keys (no TOML crate for one list).
mod toml_lite {
    pub struct Doc<'a>(&'a str);

    pub fn parse(text: &str) -> Doc<'_> {
        Doc(text)
    }

    impl Doc<'_> {
        /// Keys of `[name]` (`key = ...` or `key.workspace = true`).
        pub fn table_keys(&self, name: &str) -> Vec<String> {
            let header = format!("[{name}]");
            let mut keys = Vec::new();
            let mut inside = false;
            for line in self.0.lines() {
                let t = line.trim();
                if t.starts_with('[') {
                    inside = t == header;
                    continue;
                }
                if !inside || t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let key = t.split(['=', '.', ' ']).next().unwrap_or("").trim();
                if !key.is_empty() {
                    keys.push(key.trim_matches('"').to_owned());
                }
            }
            keys
        }
    }
}
