//! Reads a login page as a browser's user would: which form it shows (one-page login, the
//! identifier step, the password step, a one-time code, consent), whether it is a bot
//! challenge, and what error it displays; then fills the form, hidden fields (`state`, CSRF
//! tokens) copied. HTML is parsed with `scraper` (html5ever, the HTML5 parsing algorithm), so
//! any bytes give a document and nothing panics.

use scraper::{ElementRef, Html, Selector};

use super::config::FormFields;

/// What a page asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageKind {
    /// Username and password in one form.
    Login,
    /// The identifier step of an identifier-first login: the username only.
    Identifier,
    /// The password step (the username was given before).
    Password,
    /// A one-time code (MFA).
    Otp,
    /// The application asks the user to allow access.
    Consent,
    /// A CAPTCHA or bot-detection challenge.
    Captcha,
    /// None of these: the page's markup is not what the check knows.
    Unknown,
}

impl PageKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            PageKind::Login => "login",
            PageKind::Identifier => "identifier",
            PageKind::Password => "password",
            PageKind::Otp => "mfa_otp",
            PageKind::Consent => "consent",
            PageKind::Captcha => "captcha",
            PageKind::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone)]
struct Input {
    name: String,
    /// Lowercase `type` (`text` when absent).
    ty: String,
    value: String,
    checked: bool,
    autocomplete: String,
}

#[derive(Debug, Clone)]
struct Submitter {
    name: Option<String>,
    value: String,
    label: String,
}

/// A form, as the page declared it.
#[derive(Debug, Clone)]
pub(crate) struct Form {
    /// The raw `action` (resolved against the page URL by the caller); `None`: the page URL.
    pub action: Option<String>,
    /// `method="post"` (else GET).
    pub post: bool,
    inputs: Vec<Input>,
    submitters: Vec<Submitter>,
}

/// What a page is, with the form to submit.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub kind: PageKind,
    pub form: Option<Form>,
    user_field: Option<String>,
    pass_field: Option<String>,
    code_field: Option<String>,
    /// The error the page displays (`role=alert`, an element whose class or id says error).
    pub error: Option<String>,
}

fn sel(s: &str) -> Selector {
    // The selectors below are constants; a failure is a bug caught by the unit tests.
    Selector::parse(s).unwrap_or_else(|_| Selector::parse("_never_").expect("a tag selector"))
}

const USER_NAMES: [&str; 12] = [
    "username",
    "user",
    "email",
    "login",
    "identifier",
    "loginfmt",
    "j_username",
    "user_name",
    "userid",
    "user_id",
    "emailaddress",
    "identifier_input",
];
const CODE_NAMES: [&str; 10] = [
    "code",
    "otp",
    "totp",
    "otp_code",
    "otpcode",
    "one_time_code",
    "mfa_code",
    "verification_code",
    "passcode",
    "credentials.passcode",
];
const CAPTCHA: &str = ".g-recaptcha, .h-captcha, .cf-turnstile, [data-sitekey], [class*=captcha], \
     [id*=captcha], [name*=captcha], script[src*=recaptcha], script[src*=hcaptcha], \
     script[src*=turnstile], iframe[src*=captcha]";
const ERRORS: &str = "[role=alert], [class*=error], [id*=error], .alert, .message-error";

fn is_text(ty: &str) -> bool {
    matches!(ty, "text" | "email" | "tel" | "")
}

fn is_yes(s: &str) -> bool {
    let s = s.to_ascii_lowercase();
    ["accept", "allow", "authorize", "approve", "consent", "yes", "confirm", "continue"]
        .iter()
        .any(|w| s.contains(w))
}

fn is_no(s: &str) -> bool {
    let s = s.to_ascii_lowercase();
    ["deny", "cancel", "decline", "reject", "abort"]
        .iter()
        .any(|w| s.contains(w))
}

fn text_of(e: ElementRef<'_>) -> String {
    e.text()
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_form(f: ElementRef<'_>) -> Form {
    let mut inputs = Vec::new();
    let mut submitters = Vec::new();
    for e in f.select(&sel("input, button, select, textarea")) {
        let el = e.value();
        let attr = |k: &str| el.attr(k).unwrap_or("").to_owned();
        let name = attr("name");
        match el.name() {
            "button" => {
                let ty = attr("type").to_ascii_lowercase();
                if ty.is_empty() || ty == "submit" {
                    submitters.push(Submitter {
                        name: (!name.is_empty()).then_some(name),
                        value: attr("value"),
                        label: text_of(e),
                    });
                }
            }
            "select" => {
                let value = e
                    .select(&sel("option[selected], option"))
                    .next()
                    .map(|o| o.value().attr("value").map_or_else(|| text_of(o), str::to_owned))
                    .unwrap_or_default();
                inputs.push(Input {
                    name,
                    ty: "select".into(),
                    value,
                    checked: true,
                    autocomplete: String::new(),
                });
            }
            "textarea" => inputs.push(Input {
                name,
                ty: "textarea".into(),
                value: text_of(e),
                checked: true,
                autocomplete: String::new(),
            }),
            _ => {
                let ty = attr("type").to_ascii_lowercase();
                if ty == "submit" || ty == "image" {
                    submitters.push(Submitter {
                        name: (!name.is_empty()).then_some(name),
                        value: attr("value"),
                        label: attr("value"),
                    });
                    continue;
                }
                if matches!(ty.as_str(), "button" | "reset" | "file") {
                    continue;
                }
                inputs.push(Input {
                    name,
                    value: attr("value"),
                    checked: el.attr("checked").is_some(),
                    autocomplete: attr("autocomplete").to_ascii_lowercase(),
                    ty,
                });
            }
        }
    }
    let method = f.value().attr("method").unwrap_or("get");
    Form {
        action: f
            .value()
            .attr("action")
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
        post: method.eq_ignore_ascii_case("post"),
        inputs,
        submitters,
    }
}

/// Classifies one form; the fields found go into a [`Page`].
fn classify(form: Form, cfg: &FormFields, action_hint: &str) -> Page {
    let visible = |i: &&Input| i.ty != "hidden" && !i.name.is_empty();
    let pass_field = match &cfg.password_field {
        Some(n) => form.inputs.iter().find(|i| &i.name == n),
        None => form.inputs.iter().filter(visible).find(|i| i.ty == "password"),
    }
    .map(|i| i.name.clone());
    let user_field = match &cfg.username_field {
        Some(n) => form.inputs.iter().filter(visible).find(|i| &i.name == n),
        None => form.inputs.iter().filter(visible).find(|i| {
            let n = i.name.to_ascii_lowercase();
            i.ty == "email"
                || (is_text(&i.ty)
                    && (USER_NAMES.contains(&n.as_str())
                        || i.autocomplete.split_whitespace().any(|a| a == "username" || a == "email")))
        }),
    }
    .map(|i| i.name.clone());
    let code_field = match &cfg.code_field {
        Some(n) => form.inputs.iter().filter(visible).find(|i| &i.name == n),
        None => form.inputs.iter().filter(visible).find(|i| {
            let n = i.name.to_ascii_lowercase();
            matches!(i.ty.as_str(), "text" | "tel" | "number" | "")
                && (CODE_NAMES.contains(&n.as_str()) || i.autocomplete == "one-time-code")
        }),
    }
    .map(|i| i.name.clone());
    let consent = {
        let hidden = form
            .inputs
            .iter()
            .any(|i| i.ty == "hidden" && (i.value.eq_ignore_ascii_case("consent") || i.name.eq_ignore_ascii_case("consent")));
        let action = action_hint.to_ascii_lowercase().contains("consent");
        let button = form
            .submitters
            .iter()
            .any(|s| is_yes(&s.value) && !is_no(&s.value) && s.name.is_some());
        hidden || action || button
    };
    let kind = match (&pass_field, &user_field, &code_field) {
        (Some(_), Some(_), _) => PageKind::Login,
        (Some(_), None, _) => PageKind::Password,
        (None, _, Some(_)) => PageKind::Otp,
        (None, Some(_), None) => PageKind::Identifier,
        (None, None, None) if consent => PageKind::Consent,
        _ => PageKind::Unknown,
    };
    Page {
        kind,
        form: Some(form),
        user_field,
        pass_field,
        code_field,
        error: None,
    }
}

fn rank(k: PageKind) -> u8 {
    match k {
        PageKind::Login => 6,
        PageKind::Password => 5,
        PageKind::Otp => 4,
        PageKind::Identifier => 3,
        PageKind::Consent => 2,
        PageKind::Captcha => 1,
        PageKind::Unknown => 0,
    }
}

/// Why `form.selector` is refused.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a CSS selector")]
pub(crate) struct SelectorError(pub String);

/// Checks a configured `form.selector`.
pub(crate) fn check_selector(s: &str) -> Result<(), SelectorError> {
    Selector::parse(s)
        .map(|_| ())
        .map_err(|_| SelectorError(s.to_owned()))
}

/// Reads a page: its best form (login over password over code over identifier over consent),
/// a bot challenge, and the error it displays.
pub(crate) fn read(html: &str, cfg: &FormFields) -> Page {
    let doc = Html::parse_document(html);
    let error = doc
        .select(&sel(ERRORS))
        .map(text_of)
        .find(|t| !t.is_empty())
        .map(|t| short(&t, 200));
    if doc.select(&sel(CAPTCHA)).next().is_some() {
        return Page {
            kind: PageKind::Captcha,
            form: None,
            user_field: None,
            pass_field: None,
            code_field: None,
            error,
        };
    }
    let forms = match cfg.selector.as_deref().map(Selector::parse) {
        Some(Ok(s)) => s,
        _ => sel("form"),
    };
    let mut best: Option<Page> = None;
    for f in doc.select(&forms).filter(|f| f.value().name() == "form") {
        let form = read_form(f);
        let hint = form.action.clone().unwrap_or_default();
        let page = classify(form, cfg, &hint);
        if best.as_ref().is_none_or(|b| rank(page.kind) > rank(b.kind)) {
            best = Some(page);
        }
    }
    let mut page = best.unwrap_or(Page {
        kind: PageKind::Unknown,
        form: None,
        user_field: None,
        pass_field: None,
        code_field: None,
        error: None,
    });
    page.error = error;
    page
}

fn short(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// What the check puts into a form.
#[derive(Default)]
pub(crate) struct Fill<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub code: Option<&'a str>,
}

impl Page {
    /// The `name`s of the username, password and one-time-code inputs found, in that order.
    pub fn fields(&self) -> [Option<&str>; 3] {
        [
            self.user_field.as_deref(),
            self.pass_field.as_deref(),
            self.code_field.as_deref(),
        ]
    }

    /// The form's fields as a browser would submit them: every named input (checkboxes and
    /// radios only when checked), hidden ones included, the user's values put in, and the
    /// submitting button (on a consent page, the allowing one).
    pub fn fill(&self, with: &Fill<'_>) -> Vec<(String, String)> {
        let Some(form) = &self.form else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for i in &form.inputs {
            if i.name.is_empty() || (matches!(i.ty.as_str(), "checkbox" | "radio") && !i.checked) {
                continue;
            }
            let mut value = i.value.clone();
            for (field, v) in [
                (&self.user_field, with.username),
                (&self.pass_field, with.password),
                (&self.code_field, with.code),
            ] {
                if let (Some(f), Some(v)) = (field, v) {
                    if f == &i.name && i.ty != "hidden" {
                        value = v.to_owned();
                    }
                }
            }
            out.push((i.name.clone(), value));
        }
        let submitter = if self.kind == PageKind::Consent {
            form.submitters
                .iter()
                .find(|s| (is_yes(&s.value) || is_yes(&s.label)) && !is_no(&s.value))
                .or_else(|| form.submitters.iter().find(|s| !is_no(&s.value) && !is_no(&s.label)))
        } else {
            form.submitters
                .iter()
                .find(|s| !is_no(&s.value) && !is_no(&s.label))
        };
        if let Some(Submitter {
            name: Some(n),
            value,
            ..
        }) = submitter
        {
            out.push((n.clone(), value.clone()));
        }
        out
    }
}

#[cfg(test)]
#[path = "tests/form.rs"]
mod tests;
