//! Rendering pages: a handlebars registry of its own, with HTML escaping on (the message templates
//! use a separate, unescaped one), strict so that a misspelt field fails a test instead of
//! printing nothing, and the page templates compiled into the binary.

use std::sync::LazyLock;

use axum::response::{Html, IntoResponse};
use chrono_tz::Europe::London;
use handlebars::Handlebars;
use serde_json::{Value, json};

use super::{PageResult, Staff, StaffError};

const PAGES: &[(&str, &str)] = &[
    ("layout", include_str!("pages/layout.hbs")),
    ("error", include_str!("pages/error.hbs")),
    ("login", include_str!("pages/login.hbs")),
    ("home", include_str!("pages/home.hbs")),
    ("templates", include_str!("pages/templates.hbs")),
    ("history", include_str!("pages/history.hbs")),
    ("draft", include_str!("pages/draft.hbs")),
    ("version", include_str!("pages/version.hbs")),
    ("preview", include_str!("pages/preview.hbs")),
    ("diff", include_str!("pages/diff.hbs")),
    ("review", include_str!("pages/review.hbs")),
    ("case", include_str!("pages/case.hbs")),
    ("admin", include_str!("pages/admin.hbs")),
    ("key_created", include_str!("pages/key_created.hbs")),
    ("reports", include_str!("pages/reports.hbs")),
    ("login_code", include_str!("pages/login_code.hbs")),
    ("two_factor", include_str!("pages/two_factor.hbs")),
    ("recovery_codes", include_str!("pages/recovery_codes.hbs")),
];

static REGISTRY: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    for (name, source) in PAGES {
        // Compiled in: a broken page template fails every test that renders a page.
        registry.register_template_string(name, *source).unwrap_or_else(|e| panic!("page template {name}: {e}"));
    }
    registry
});

/// Renders page `name` with `data`; adds who is logged in (for the menu and the forms' CSRF
/// token) and the message left by the previous action.
pub fn render(name: &str, staff: Option<&Staff>, mut data: Value) -> Result<Html<String>, StaffError> {
    let user = staff.map(|s| {
        json!({
            "username": s.username,
            "role": s.role,
            "is_admin": s.is_admin(),
            "can_write": s.can_write(),
            "can_approve": s.can_approve(),
        })
    });
    if let Value::Object(map) = &mut data {
        map.insert("user".into(), user.unwrap_or(Value::Null));
        map.insert("csrf".into(), staff.map(|s| s.csrf.clone()).unwrap_or_default().into());
        map.insert("flash".into(), staff.and_then(|s| s.flash.clone()).into());
        map.entry("nav").or_insert(json!({}));
    }
    Ok(Html(REGISTRY.render(name, &data)?))
}

pub fn page(name: &str, staff: &Staff, data: Value) -> PageResult {
    Ok(render(name, Some(staff), data)?.into_response())
}

/// A time for people: London time, e.g. "Mon 23 Nov 2026, 10:00".
pub fn local_time(ms: i64) -> String {
    crate::time::from_ms(ms).with_timezone(&London).format("%a %-d %b %Y, %H:%M").to_string()
}

/// A time for a `<time>` element: what people read and the machine-readable value.
pub fn when(ms: i64) -> Value {
    json!({ "text": local_time(ms), "iso": crate::time::rfc3339_ms(ms) })
}

pub fn when_opt(ms: Option<i64>) -> Value {
    ms.map(when).unwrap_or(Value::Null)
}

/// `s` as one segment of a URL path (for case references in links).
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The staff page of a case.
pub fn case_url(case_ref: &str) -> String {
    format!("/staff/cases/{}", path_segment(case_ref))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_template_compiles() {
        assert_eq!(REGISTRY.get_templates().len(), PAGES.len());
    }

    #[test]
    fn values_are_html_escaped() {
        let html =
            render("error", None, json!({ "title": "<script>x</script>", "message": "a & \"b\"", "hint": "<b>" }))
                .unwrap()
                .0;
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>x"));
        assert!(html.contains("a &amp; &quot;b&quot;"));
    }

    #[test]
    fn case_references_are_safe_in_links() {
        assert_eq!(case_url("VS-2026-000123"), "/staff/cases/VS-2026-000123");
        assert_eq!(case_url("a/b?c d"), "/staff/cases/a%2Fb%3Fc%20d");
    }

    #[test]
    fn times_are_shown_in_london_time() {
        // 2026-07-01T09:00Z is 10:00 British Summer Time.
        let ms = chrono::DateTime::parse_from_rfc3339("2026-07-01T09:00:00Z").unwrap().timestamp_millis();
        assert_eq!(local_time(ms), "Wed 1 Jul 2026, 10:00");
    }
}
