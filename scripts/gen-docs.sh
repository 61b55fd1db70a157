#!/usr/bin/env bash
# Writes docs/reference/<kind>/<type>.md from each component's module doc comment (`//!` lines
# of crates/*/src/<type>/mod.rs), so the reference never drifts from the code.
# `cargo test --test docs` fails when the committed files are stale: re-run this script.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/reference}
rm -rf "$out"
for crate in receiver processor exporter extension; do
  for mod in crates/authwatch-$crate/src/*/mod.rs; do
    ty=$(basename "$(dirname "$mod")")
    [ "$ty" = helper ] && continue
    grep -q 'components!' "crates/authwatch-$crate/src/lib.rs" || continue
    grep -Eq "[:,] *$ty([,;) ]|$)" "crates/authwatch-$crate/src/lib.rs" || continue
    kind=$crate
    if [ "$crate" = processor ] && grep -q 'ConnectorConfig for Config' "$mod"; then kind=connector; fi
    mkdir -p "$out/$kind"
    grep '^//!' "$mod" | sed -E 's#^//! ?##' > "$out/$kind/$ty.md"
  done
done
