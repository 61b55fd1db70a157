//! Markdown as the docs tests read it: prose outside code, link targets, GitHub's heading
//! anchors, ```yaml blocks and their `${env:...}` references.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines outside fenced code blocks, with their line numbers (1-based).
pub fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match fence {
            Some(f) if t.starts_with(f) => fence = None,
            Some(_) => {}
            None if t.starts_with("```") || t.starts_with("~~~") => fence = Some(&t[..3]),
            None => out.push((i + 1, line)),
        }
    }
    out
}

/// A line with inline code spans blanked out.
pub fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                return out;
            }
        }
        out.push(' ');
    }
    out.push_str(rest);
    out
}

/// `[text](target)` targets (images included) and `[label]: target` definitions of one line.
pub fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut out = Vec::new();
    let mut rest = line.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let mut depth = 0;
        let end = after.char_indices().find(|(_, c)| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' if depth == 0 => true,
            ')' => {
                depth -= 1;
                false
            }
            _ => false,
        });
        let Some((end, _)) = end else { break };
        out.push(after[..end].to_owned());
        rest = &after[end..];
    }
    let t = line.trim_start();
    if let (true, Some(i)) = (t.starts_with('['), t.find("]: ")) {
        out.push(t[i + 3..].to_owned());
    }
    out.into_iter()
        .map(|t| {
            let t = t.trim();
            let t = t.split_once(" \"").map_or(t, |(u, _)| u);
            t.trim_start_matches('<').trim_end_matches('>').to_owned()
        })
        .collect()
}

/// GitHub's heading anchors: lowercase, only letters, digits, `-`, `_` and spaces kept, spaces
/// to `-`; a repeated heading gets `-1`, `-2`, ...
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let mut heading = line[hashes..]
            .trim()
            .trim_end_matches('#')
            .trim()
            .to_owned();
        // A link in a heading counts with its text only.
        while let (Some(a), Some(b)) = (heading.find("]("), heading.find(')')) {
            if b < a {
                break;
            }
            heading.replace_range(a + 1..=b, "");
        }
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// `a/b/../c` → `a/c`, without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The ```yaml blocks of a markdown text, with the line each starts on.
pub fn yaml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    // (first line, fence indentation, body)
    let mut current: Option<(usize, usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match current.as_mut() {
            Some(_) if t.starts_with("```") => {
                let (n, _, body) = current.take().unwrap();
                out.push((n, body));
            }
            Some((_, indent, body)) => {
                // A block in a list item is indented as deep as its fence; the YAML is not.
                let spaces = line.chars().take(*indent).take_while(|c| *c == ' ').count();
                body.push_str(&line[spaces..]);
                body.push('\n');
            }
            None => {
                if let Some(info) = t.strip_prefix("```") {
                    if matches!(info.split_whitespace().next(), Some("yaml" | "yml")) {
                        current = Some((i + 1, line.len() - t.len(), String::new()));
                    }
                }
            }
        }
    }
    out
}

pub fn env_references(yaml: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = yaml;
    while let Some(i) = rest.find("${env:") {
        let after = &rest[i + 6..];
        let end = after.find('}').unwrap_or(after.len());
        let reference = &after[..end];
        if !reference.contains(":-") {
            out.insert(reference.to_owned());
        }
        rest = &after[end..];
    }
    out
}

#[test]
fn the_markdown_helpers_work() {
    assert_eq!(
        link_targets("see [a](x.md#y) and `[b](not.md)`, ![i](img.png \"t\") [c](<d e.md>)"),
        ["x.md#y", "img.png", "d e.md"]
    );
    assert_eq!(link_targets("[ref]: ../a.md"), ["../a.md"]);
    let a = anchors(
        "# `authwatch demo`: one minute\n## Status page (`status_page` extension)\n```\n# not a heading\n```\n## Options\n## Options\n### [Link](x.md) text\n",
    );
    let want = [
        "authwatch-demo-one-minute",
        "status-page-status_page-extension",
        "options",
        "options-1",
        "link-text",
    ];
    assert_eq!(a, want.iter().map(|s| s.to_string()).collect());
    let blocks = yaml_blocks(
        "text\n```yaml\na:\n  b: 1\n```\n- item\n\n  ```yaml\n  c:\n    d: 2\n  ```\n```sh\nx\n```\n",
    );
    assert_eq!(
        blocks,
        [
            (2, "a:\n  b: 1\n".to_owned()),
            (8, "c:\n  d: 2\n".to_owned())
        ]
    );
    assert_eq!(
        env_references("a: ${env:ONE}\nb: \"x${env:TWO:-2}y\"\n"),
        BTreeSet::from(["ONE".to_owned()])
    );
}
