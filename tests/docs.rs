//! The component reference under docs/reference is generated from the code's module docs
//! (scripts/gen-docs.sh); this fails when it is stale.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

fn read_tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kind in std::fs::read_dir(root).unwrap() {
        let kind = kind.unwrap().path();
        for f in std::fs::read_dir(&kind).unwrap() {
            let f = f.unwrap().path();
            let key = f.strip_prefix(root).unwrap().display().to_string();
            out.insert(key, std::fs::read_to_string(&f).unwrap());
        }
    }
    out
}

#[test]
fn component_reference_is_current() {
    let scratch = common::Scratch::new("docs");
    let fresh = scratch.0.join("reference");
    let ok = std::process::Command::new("bash")
        .arg(common::repo().join("scripts/gen-docs.sh"))
        .arg(&fresh)
        .status()
        .unwrap()
        .success();
    assert!(ok, "scripts/gen-docs.sh failed");
    let committed = read_tree(&common::repo().join("docs/reference"));
    let generated = read_tree(&fresh);
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "docs/reference is stale: run scripts/gen-docs.sh"
    );
    for (k, v) in &generated {
        assert_eq!(
            &committed[k], v,
            "docs/reference/{k} is stale: run scripts/gen-docs.sh"
        );
    }
    // Every registered component has a reference page with real content.
    for (k, v) in &generated {
        assert!(
            v.lines().count() > 5,
            "{k}: the module doc is too thin to be a reference"
        );
    }
}
