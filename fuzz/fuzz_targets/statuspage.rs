//! Status pages: the `statuspage` receiver's parsing of Statuspage v2 `summary.json`, Atom and
//! RSS (the first byte picks the format), and the time parsing of each incident's update time.
//!
//! Invariants: levels stay in their ranges; filtering by a component's name keeps exactly the
//! components with that name or id.
#![no_main]

use authwatch_receiver::fuzzing::statuspage_parse;
use authwatch_receiver::statuspage::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let format = match which % 3 {
        0 => Format::StatuspageV2,
        1 => Format::Atom,
        _ => Format::Rss,
    };
    let Ok(all) = statuspage_parse(format, body, &[]) else {
        return;
    };
    assert!(
        (0..=3).contains(&all.indicator),
        "indicator {}",
        all.indicator
    );
    for (_, _, level) in &all.components {
        assert!((0..=4).contains(level), "component level {level}");
    }
    for i in &all.incidents {
        if i.active {
            assert!(!matches!(i.status.as_str(), "resolved" | "postmortem"));
        }
    }
    if let Some((_, name, _)) = all.components.first() {
        let keep = [name.clone()];
        let some = statuspage_parse(format, body, &keep).expect("a parsed document parses again");
        let want: Vec<_> = all
            .components
            .iter()
            .filter(|(id, n, _)| n == name || id == name)
            .cloned()
            .collect();
        assert_eq!(some.components, want);
        assert_eq!(some.incidents, all.incidents);
    }
});
