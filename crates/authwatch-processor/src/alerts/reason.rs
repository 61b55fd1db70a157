//! Verdict reasons: a headline, then the evidence for and against, in short readable words.

use std::time::Duration;

/// How long ago, in words.
pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "just now".into(),
        s if s < 120 => format!("{s}s ago"),
        s => format!("{}m ago", s / 60),
    }
}

/// A window as config spells it (`5m`, `90s`).
pub(super) fn window(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A verdict reason: a headline, then the evidence for and against.
pub(super) struct Reason {
    headline: String,
    pub(super) pros: Vec<String>,
    pub(super) cons: Vec<String>,
}

impl Reason {
    pub(super) fn new(headline: impl Into<String>) -> Self {
        Reason {
            headline: headline.into(),
            pros: Vec::new(),
            cons: Vec::new(),
        }
    }

    /// Adds a sentence to the headline (before the evidence).
    pub(super) fn add_to_headline(&mut self, sentence: &str) {
        self.headline.push(' ');
        self.headline.push_str(sentence);
    }

    pub(super) fn text(self) -> String {
        let list = |v: Vec<String>| if v.is_empty() { "none".to_owned() } else { v.join("; ") };
        format!("{} For: {}. Against: {}.", self.headline, list(self.pros), list(self.cons))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_list_for_and_against() {
        let mut r = Reason::new("Headline.");
        r.pros.push("a".into());
        r.pros.push("b".into());
        r.add_to_headline("More.");
        assert_eq!(r.text(), "Headline. More. For: a; b. Against: none.");
        assert_eq!(human(Duration::from_secs(35)), "35s ago");
        assert_eq!(human(Duration::from_secs(600)), "10m ago");
        assert_eq!(window(Duration::from_secs(300)), "5m");
        assert_eq!(window(Duration::from_secs(90)), "90s");
    }
}
