//! Loading a config: decode and validate every component ([`crate::config`]), then check the
//! pipeline graph ([`crate::graph`]); every problem, sorted by path, at once.

use authwatch_core::Factories;

use crate::config::{decode, ConfigSource, Decoded, LoadError, Loaded};

/// Loads, merges (in order), expands and validates config documents.
pub fn load(
    sources: &[ConfigSource],
    factories: &Factories,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, LoadError> {
    let Decoded {
        mut loaded,
        mut errors,
        mut warnings,
    } = decode(sources, factories, env)?;
    if !loaded.service_invalid {
        let checks = crate::graph::check(&loaded);
        errors.extend(checks.errors);
        warnings.extend(checks.warnings);
    }
    errors.sort();
    errors.dedup();
    warnings.sort();
    warnings.dedup();
    if !errors.is_empty() {
        return Err(LoadError { errors, warnings });
    }
    loaded.warnings = warnings;
    Ok(loaded)
}
