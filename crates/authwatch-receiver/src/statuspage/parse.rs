//! Status documents into one [`Snapshot`]: Statuspage v2 `summary.json`, Atom and RSS feeds.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde::Deserialize;

use super::Format;

/// What a page said at one poll.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Snapshot {
    /// 0 none, 1 minor, 2 major, 3 critical.
    pub indicator: i64,
    pub components: Vec<Component>,
    /// Incidents in the document (v2: unresolved only; feeds: every entry).
    pub incidents: Vec<Incident>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Component {
    pub id: String,
    pub name: String,
    /// 0 operational ... 4 under maintenance.
    pub level: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Incident {
    pub id: String,
    pub name: String,
    /// none, minor, major, critical, maintenance, unknown.
    pub impact: String,
    /// investigating, identified, monitoring, resolved, postmortem, ... lower_snake_case.
    pub status: String,
    pub url: String,
    /// Identifies the latest update, so that a new update is seen as a change.
    pub update_id: String,
    /// Text of the latest update.
    pub update_text: String,
    /// When the incident was last updated, RFC 3339 or RFC 2822 as the page wrote it.
    pub updated_at: String,
}

impl Incident {
    /// Whether the incident still needs attention.
    pub fn is_active(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "resolved" | "postmortem" | "completed" | "scheduled"
        )
    }
}

/// Why a document could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not a Statuspage v2 summary document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a well-formed XML feed: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    #[error("not a well-formed XML feed: at byte {at}: {source}")]
    Xml {
        at: u64,
        #[source]
        source: quick_xml::Error,
    },
    #[error("not a well-formed XML feed: the document ends inside an element (truncated?)")]
    Truncated,
    #[error("no <feed> or <rss> element; is `format` right?")]
    NotAFeed,
}

/// Parses `body` as `format`, keeping only `components` (names or ids) when not empty.
pub(crate) fn parse(
    format: Format,
    body: &[u8],
    components: &[String],
) -> Result<Snapshot, ParseError> {
    match format {
        Format::StatuspageV2 => parse_summary(body, components),
        Format::Atom | Format::Rss => parse_feed(body),
    }
}

// === Statuspage v2 ===

#[derive(Deserialize)]
struct Summary {
    status: SummaryStatus,
    #[serde(default)]
    components: Vec<SummaryComponent>,
    #[serde(default)]
    incidents: Vec<SummaryIncident>,
    #[serde(default)]
    page: Option<SummaryPage>,
}

#[derive(Deserialize)]
struct SummaryPage {
    #[serde(default)]
    url: String,
}

#[derive(Deserialize)]
struct SummaryStatus {
    indicator: String,
}

#[derive(Deserialize)]
struct SummaryComponent {
    #[serde(default)]
    id: String,
    name: String,
    status: String,
}

#[derive(Deserialize)]
struct SummaryIncident {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    impact: String,
    #[serde(default)]
    shortlink: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    incident_updates: Vec<SummaryUpdate>,
}

#[derive(Deserialize)]
struct SummaryUpdate {
    #[serde(default)]
    id: String,
    #[serde(default)]
    body: String,
}

/// Statuspage indicator to a level; `maintenance` and unknown values count as 0 and 1.
pub(crate) fn indicator_level(indicator: &str) -> i64 {
    match indicator {
        "none" | "maintenance" => 0,
        "minor" => 1,
        "major" => 2,
        "critical" => 3,
        _ => 1,
    }
}

/// Component status to a level; an unknown status counts as degraded, never as operational.
pub(crate) fn component_level(status: &str) -> i64 {
    match status {
        "operational" => 0,
        "degraded_performance" => 1,
        "partial_outage" => 2,
        "major_outage" => 3,
        "under_maintenance" => 4,
        _ => 1,
    }
}

fn parse_summary(body: &[u8], keep: &[String]) -> Result<Snapshot, ParseError> {
    let s: Summary = serde_json::from_slice(body)?;
    let page_url = s.page.map(|p| p.url).unwrap_or_default();
    let components = s
        .components
        .into_iter()
        .filter(|c| keep.is_empty() || keep.iter().any(|k| *k == c.name || *k == c.id))
        .map(|c| Component {
            level: component_level(&c.status),
            id: c.id,
            name: c.name,
        })
        .collect();
    let incidents = s
        .incidents
        .into_iter()
        .map(|i| {
            let latest = i.incident_updates.first();
            let url = i.shortlink.filter(|l| !l.is_empty()).unwrap_or_else(|| {
                if page_url.is_empty() {
                    String::new()
                } else {
                    format!("{}/incidents/{}", page_url.trim_end_matches('/'), i.id)
                }
            });
            Incident {
                update_id: latest.map(|u| u.id.clone()).unwrap_or_default(),
                update_text: latest.map(|u| u.body.clone()).unwrap_or_default(),
                updated_at: i.updated_at.unwrap_or_default(),
                id: i.id,
                name: i.name,
                impact: if i.impact.is_empty() {
                    "unknown".into()
                } else {
                    i.impact
                },
                status: i.status,
                url,
            }
        })
        .collect();
    Ok(Snapshot {
        indicator: indicator_level(&s.status.indicator),
        components,
        incidents,
    })
}

// === Atom / RSS ===

#[derive(Default)]
struct Entry {
    id: String,
    title: String,
    link: String,
    updated: String,
    content: String,
}

/// Which child of an entry the text belongs to.
#[derive(Clone, Copy, PartialEq)]
enum Field {
    Id,
    Title,
    Link,
    Updated,
    Content,
    Summary,
}

fn field_of(local: &[u8]) -> Option<Field> {
    Some(match local {
        b"id" | b"guid" => Field::Id,
        b"title" => Field::Title,
        b"link" => Field::Link,
        b"updated" | b"pubDate" | b"published" => Field::Updated,
        b"content" | b"encoded" => Field::Content,
        b"description" | b"summary" => Field::Summary,
        _ => return None,
    })
}

fn parse_feed(body: &[u8]) -> Result<Snapshot, ParseError> {
    let text = std::str::from_utf8(body)?;
    let mut reader = Reader::from_str(text);
    let mut seen_root = false;
    let mut depth_in_entry = 0usize;
    let mut entry: Option<Entry> = None;
    let mut summary = String::new();
    let mut field: Option<(Field, usize)> = None;
    let mut entries = Vec::new();
    let mut depth = 0usize;
    loop {
        let ev = reader
            .read_event()
            .map_err(|source| ParseError::Xml {
                at: reader.error_position(),
                source,
            })?;
        match ev {
            Event::Start(e) => {
                depth += 1;
                let name = e.local_name();
                let local = name.as_ref();
                if matches!(local, b"feed" | b"rss" | b"RDF") {
                    seen_root = true;
                }
                if entry.is_none() && matches!(local, b"entry" | b"item") {
                    entry = Some(Entry::default());
                    summary.clear();
                    depth_in_entry = depth;
                } else if let Some(en) = entry.as_mut() {
                    if field.is_none() && depth == depth_in_entry + 1 {
                        if let Some(f) = field_of(local) {
                            if f == Field::Link {
                                link_attr(&e, en);
                            }
                            field = Some((f, depth));
                        }
                    }
                }
            }
            Event::Empty(e) => {
                if let Some(en) = entry.as_mut() {
                    if e.local_name().as_ref() == b"link" {
                        link_attr(&e, en);
                    }
                }
            }
            Event::Text(t) => {
                if let (Some(en), Some((f, _))) = (entry.as_mut(), field) {
                    let s = match t.unescape() {
                        Ok(s) => s.into_owned(),
                        Err(_) => String::from_utf8_lossy(&t.into_inner()).into_owned(),
                    };
                    push(en, &mut summary, f, &s);
                }
            }
            Event::CData(t) => {
                if let (Some(en), Some((f, _))) = (entry.as_mut(), field) {
                    let s = String::from_utf8_lossy(&t.into_inner()).into_owned();
                    push(en, &mut summary, f, &s);
                }
            }
            Event::End(_) => {
                if matches!(field, Some((_, d)) if d == depth) {
                    field = None;
                }
                if entry.is_some() && depth == depth_in_entry {
                    if let Some(mut en) = entry.take() {
                        if en.content.trim().is_empty() {
                            en.content = std::mem::take(&mut summary);
                        }
                        entries.push(en);
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => {
                if depth != 0 {
                    return Err(ParseError::Truncated);
                }
                break;
            }
            _ => {}
        }
    }
    if !seen_root {
        return Err(ParseError::NotAFeed);
    }
    let incidents: Vec<Incident> = entries.into_iter().map(feed_incident).collect();
    let indicator = incidents
        .iter()
        .filter(|i| i.is_active())
        .map(|i| impact_level(&i.impact))
        .max()
        .unwrap_or(0);
    Ok(Snapshot {
        indicator,
        components: Vec::new(),
        incidents,
    })
}

fn push(en: &mut Entry, summary: &mut String, f: Field, s: &str) {
    let target = match f {
        Field::Id => &mut en.id,
        Field::Title => &mut en.title,
        Field::Link => &mut en.link,
        Field::Updated => &mut en.updated,
        Field::Content => &mut en.content,
        Field::Summary => summary,
    };
    target.push_str(s);
}

/// Atom `<link href=".." rel="alternate"/>`: the first alternate (or rel-less) link wins.
fn link_attr(e: &BytesStart<'_>, en: &mut Entry) {
    let rel = e
        .try_get_attribute("rel")
        .ok()
        .flatten()
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()));
    if rel.as_deref().is_some_and(|r| r != "alternate") || !en.link.is_empty() {
        return;
    }
    if let Some(href) = e
        .try_get_attribute("href")
        .ok()
        .flatten()
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
    {
        en.link = href;
    }
}

/// Impact level for the page indicator.
fn impact_level(impact: &str) -> i64 {
    match impact {
        "critical" => 3,
        "major" => 2,
        "minor" | "unknown" => 1,
        _ => 0,
    }
}

fn feed_incident(en: Entry) -> Incident {
    let (status, update_text) = latest_update(&en.content);
    let lower_all = format!("{} {}", en.title, update_text).to_lowercase();
    let status = status.unwrap_or_else(|| {
        if lower_all.contains("resolved") {
            "resolved".to_owned()
        } else {
            "unknown".to_owned()
        }
    });
    let impact = if lower_all.contains("maintenance") {
        "maintenance"
    } else if lower_all.contains("outage") {
        "major"
    } else {
        "minor"
    };
    let id = if en.id.trim().is_empty() {
        en.link.trim().to_owned()
    } else {
        en.id.trim().to_owned()
    };
    Incident {
        update_id: format!("{status}|{}", en.updated.trim()),
        id,
        name: en.title.trim().to_owned(),
        impact: impact.to_owned(),
        status,
        url: en.link.trim().to_owned(),
        update_text,
        updated_at: en.updated.trim().to_owned(),
    }
}

/// The newest update of an entry's HTML content: its `<strong>Status</strong>` (lower_snake_case)
/// and the text after it up to the next update.
fn latest_update(html: &str) -> (Option<String>, String) {
    let lower = html.to_ascii_lowercase();
    let Some(open) = lower.find("<strong>") else {
        return (None, strip_tags(html));
    };
    let start = open + "<strong>".len();
    let Some(len) = lower[start..].find("</strong>") else {
        return (None, strip_tags(html));
    };
    let status = strip_tags(&html[start..start + len])
        .trim()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_");
    let after = start + len + "</strong>".len();
    let rest = &html[after..];
    let end = rest
        .to_ascii_lowercase()
        .find("</p>")
        .or_else(|| rest.to_ascii_lowercase().find("<strong>"))
        .unwrap_or(rest.len());
    let text = strip_tags(&rest[..end]);
    let text = text.trim().trim_start_matches('-').trim().to_owned();
    (
        if status.is_empty() {
            None
        } else {
            Some(status)
        },
        text,
    )
}

/// Drops HTML tags and collapses whitespace; decodes the few entities feeds use.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_update_is_first_strong() {
        let html = "<p><small>Nov 26, 10:05 UTC</small><br><strong>Monitoring</strong> - A fix has been <b>deployed</b>.</p><p><small>Nov 26, 10:00 UTC</small><br><strong>Investigating</strong> - We are investigating.</p>";
        let (s, t) = latest_update(html);
        assert_eq!(s.as_deref(), Some("monitoring"));
        assert_eq!(t, "A fix has been deployed .");
        let (s, _) = latest_update("<strong>In progress</strong> - working");
        assert_eq!(s.as_deref(), Some("in_progress"));
        assert_eq!(latest_update("no markup here").0, None);
    }

    #[test]
    fn unknown_statuses_are_never_operational() {
        assert_eq!(component_level("operational"), 0);
        assert_eq!(component_level("on_fire"), 1);
        assert_eq!(indicator_level("none"), 0);
        assert_eq!(indicator_level("bogus"), 1);
    }

    #[test]
    fn not_a_feed_is_refused() {
        assert!(matches!(
            parse(Format::Atom, b"<html><body>hi</body></html>", &[]),
            Err(ParseError::NotAFeed)
        ));
        assert!(matches!(
            parse(Format::Atom, b"<feed><entry><title>x</title>", &[]),
            Err(ParseError::Truncated)
        ));
        assert!(parse(Format::StatuspageV2, b"{\"page\":{}}", &[]).is_err());
    }
}
