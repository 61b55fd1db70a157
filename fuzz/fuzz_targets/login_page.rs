//! Login pages: the `authorization_code` check's reading of a hosted login page (which form,
//! which fields, the error shown, a bot challenge) and the form it fills and submits.
//!
//! Byte 0 picks the `form` options: even, the defaults (fields detected); odd, a selector and
//! named fields, as a user configures them for an unusual page. The rest is the page (UTF-8).
//!
//! Invariants: the page's kind agrees with the fields found; a challenge or a page without a form
//! submits nothing; the error shown is at most 200 bytes and `...`; the probe user's password,
//! username and code are only ever submitted under the field found for them (so credentials
//! never go into a hidden or unrelated field of a changed page).
#![no_main]

use authwatch_receiver::fuzzing::login_page;
use libfuzzer_sys::fuzz_target;

/// NUL never comes out of the HTML parser (it is replaced or dropped), so these can only reach
/// the submitted form as the values the check fills in.
const USERNAME: &str = "\0probe-user\0";
const PASSWORD: &str = "\0probe-password\0";
const CODE: &str = "\0123456\0";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(html) = std::str::from_utf8(rest) else {
        return;
    };
    if html.contains('\0') {
        return;
    }
    let fields = if selector % 2 == 0 {
        [None, None, None, None]
    } else {
        [Some("form.login, #login form"), Some("user"), Some("pass"), Some("otp")]
    };
    let page = login_page(html, fields, [USERNAME, PASSWORD, CODE]);
    let [user, pass, code] = &page.fields;
    let ok = match page.kind {
        "login" => user.is_some() && pass.is_some(),
        "password" => pass.is_some() && user.is_none(),
        "mfa_otp" => pass.is_none() && code.is_some(),
        "identifier" => user.is_some() && pass.is_none() && code.is_none(),
        "consent" | "captcha" | "unknown" => user.is_none() && pass.is_none() && code.is_none(),
        other => panic!("unknown page kind {other}"),
    };
    assert!(ok, "kind {} with fields {:?}", page.kind, page.fields);
    if page.kind == "captcha" || !page.has_form {
        assert!(page.submitted.is_empty(), "submitted without a form");
    }
    if let Some(e) = &page.error {
        assert!(e.len() <= 203, "error of {} bytes", e.len());
    }
    for (name, value) in &page.submitted {
        for (secret, field, what) in [
            (PASSWORD, pass, "password"),
            (USERNAME, user, "username"),
            (CODE, code, "code"),
        ] {
            if value.contains(secret) {
                assert_eq!(value, secret, "the {what} spliced into a value");
                assert_eq!(
                    Some(name),
                    field.as_ref(),
                    "the {what} submitted under `{name}`, not its field"
                );
            }
        }
    }
});
