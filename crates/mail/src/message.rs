//! The body of `POST /emails` and its validation: every field is checked and
//! every failure reported in one 422, before any credit is touched.
//!
//! Whether a sender may send their own subject, html and text at all is the
//! operator's policy, which `reserve_email` enforces (it lives with the
//! mails it counts); this module only checks that a message is well formed.

use edge_core::{Error, FieldErrors};
use serde::Deserialize;
use serde_json::Value;

pub const MAX_RECIPIENTS: usize = 50;
pub const SUBJECT_MAX: usize = 998; // RFC 5322's line limit
pub const BODY_MAX: usize = 100_000;
pub const TEMPLATE_ID_MAX: usize = 100;
pub const MAX_VARIABLES: usize = 50;

/// One address or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Recipients {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
pub struct RawMessage {
    pub to: Option<Recipients>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub template_id: Option<String>,
    pub variables: Option<Value>,
}

/// A message whose every field passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub to: Vec<String>,
    /// Always there for a custom mail; for a template, only when the sender
    /// overrides the template's own subject.
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub template: Option<(String, Value)>,
}

impl Message {
    /// `custom` or `template`: decided by the body, priced by the server.
    pub fn mail_type(&self) -> &'static str {
        if self.template.is_some() {
            "template"
        } else {
            "custom"
        }
    }

    /// What `reserve_email` logs and prices as `p_content`: the text body,
    /// or the template's variables as JSON. The html goes beside it as
    /// `p_html`, priced and logged too: everything sent counts.
    pub fn content(&self) -> String {
        match &self.template {
            Some((_, variables)) => variables.to_string(),
            None => self.text.clone().unwrap_or_default(),
        }
    }

    /// Identifies the message for `Idempotency-Key` replays.
    pub fn request_hash(&self) -> String {
        let canonical = serde_json::json!({
            "to": self.to, "subject": self.subject, "html": self.html, "text": self.text,
            "template": self.template,
        });
        edge_core::sha256_hex(canonical.to_string())
    }
}

const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// Whether any string or key in `value` holds U+0000.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

pub fn validate(raw: RawMessage) -> Result<Message, Error> {
    let mut errors = FieldErrors::new();

    let to: Vec<String> = match raw.to {
        None => Vec::new(),
        Some(Recipients::One(one)) => vec![one],
        Some(Recipients::Many(many)) => many,
    }
    .into_iter()
    .map(|a| a.trim().to_owned())
    .collect();
    if to.is_empty() {
        errors.add("to", "needs at least one address");
    }
    if to.len() > MAX_RECIPIENTS {
        errors.add("to", format!("at most {MAX_RECIPIENTS} addresses"));
    }
    for (i, address) in to.iter().enumerate() {
        if address.len() > 254 || !email_address::EmailAddress::is_valid(address) {
            errors.add(format!("to[{i}]"), "is not a valid email address");
        }
    }

    // A template brings its own subject; a custom mail needs one.
    let wants_template = raw
        .template_id
        .as_deref()
        .is_some_and(|id| !id.trim().is_empty());
    let subject = raw
        .subject
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    match &subject {
        None if !wants_template => errors.add("subject", "is required"),
        None => {}
        Some(s) if s.chars().count() > SUBJECT_MAX => errors.add(
            "subject",
            format!("must be at most {SUBJECT_MAX} characters"),
        ),
        Some(s) if s.chars().any(char::is_control) => {
            errors.add("subject", "must be one line without control characters")
        }
        Some(_) => {}
    }

    let html = raw.html.filter(|s| !s.trim().is_empty());
    let text = raw.text.filter(|s| !s.trim().is_empty());
    for (field, body) in [("html", &html), ("text", &text)] {
        if body.as_ref().is_some_and(|b| b.chars().count() > BODY_MAX) {
            errors.add(field, format!("must be at most {BODY_MAX} characters"));
        }
        // PostgreSQL's text cannot hold U+0000, so `reserve_email` refused
        // it as "a value is malformed" instead of a field error here.
        if body.as_ref().is_some_and(|b| b.contains('\0')) {
            errors.add(field, NUL_MESSAGE);
        }
    }

    let template_id = raw
        .template_id
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let template = match (template_id, raw.variables) {
        (None, None) => None,
        (None, Some(_)) => {
            errors.add("variables", "only goes with template_id");
            None
        }
        (Some(id), variables) => {
            let plain = id.len() <= TEMPLATE_ID_MAX
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !plain {
                errors.add(
                    "template_id",
                    "must be 1 to 100 letters, digits, '-', '_' or '.'",
                );
            }
            let variables = variables.unwrap_or_else(|| Value::Object(Default::default()));
            match variables.as_object() {
                Some(map) if map.len() <= MAX_VARIABLES => {}
                Some(_) => errors.add("variables", format!("at most {MAX_VARIABLES} variables")),
                None => errors.add("variables", "must be an object"),
            }
            // Nor can jsonb (`\u0000` is "unsupported"), where the
            // variables are logged.
            if holds_nul(&variables) {
                errors.add("variables", NUL_MESSAGE);
            }
            Some((id, variables))
        }
    };
    match (&template, &html, &text) {
        (None, None, None) => errors.add("text", "give html, text, or a template_id"),
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => errors.add(
            "template_id",
            "a template replaces html and text; send one or the other",
        ),
        _ => {}
    }

    errors.finish(|| {
        Some(Message {
            to,
            subject,
            html,
            text,
            template,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_testing::errors::fields;
    use serde_json::json;

    fn parse(body: Value) -> Result<Message, Error> {
        validate(serde_json::from_value(body).expect("shape"))
    }

    #[test]
    fn custom_and_template_messages() {
        let m =
            parse(json!({"to": "a@b.example", "subject": "Hi", "text": "Hello"})).expect("valid");
        assert_eq!(m.to, ["a@b.example"]);
        assert_eq!(m.mail_type(), "custom");
        let m = parse(json!({"to": ["a@b.example", "c@d.example"], "subject": "Hi", "template_id": "welcome", "variables": {"NAME": "Ada"}}))
            .expect("valid");
        assert_eq!(m.mail_type(), "template");
        assert_eq!(m.content(), r#"{"NAME":"Ada"}"#);
    }

    /// Regression (issue 11 item 14, found by schemathesis): a NUL in the
    /// html, the text or a variable passed validation and `reserve_email`
    /// answered 422 "A value is malformed or out of range" without naming
    /// the field. Seen failing before the fix: each body below was valid.
    #[test]
    fn nul_characters_are_field_errors() {
        for (body, field) in [
            (
                json!({"to": "a@b.example", "subject": "Hi", "html": "<p>a\u{0}</p>"}),
                "html",
            ),
            (
                json!({"to": "a@b.example", "subject": "Hi", "text": "a\u{0}"}),
                "text",
            ),
            (
                json!({"to": "a@b.example", "template_id": "t", "variables": {"n": ["\u{0}"]}}),
                "variables",
            ),
            (
                json!({"to": "a@b.example", "template_id": "t", "variables": {"\u{0}": 1}}),
                "variables",
            ),
        ] {
            assert_eq!(fields(parse(body.clone()).unwrap_err()), [field], "{body}");
        }
    }

    #[test]
    fn the_html_is_sent_content_beside_the_text() {
        // Regression: the html was dropped from what is priced and logged
        // whenever a text was sent too.
        let m = parse(
            json!({"to": "a@b.example", "subject": "Hi", "text": "Hello", "html": "<p>Hello</p>"}),
        )
        .expect("valid");
        assert_eq!(m.content(), "Hello");
        assert_eq!(m.html.as_deref(), Some("<p>Hello</p>"));
        let html_only =
            parse(json!({"to": "a@b.example", "subject": "Hi", "html": "<p>Hello</p>"}))
                .expect("valid");
        assert_eq!(
            html_only.content(),
            "",
            "no text: the html is not logged twice"
        );
    }

    #[test]
    fn a_template_may_leave_the_subject_to_the_template() {
        let m = parse(json!({"to": "a@b.example", "template_id": "welcome", "variables": {}}))
            .expect("valid");
        assert_eq!(m.subject, None);
        let m = parse(json!({"to": "a@b.example", "subject": "  ", "template_id": "welcome"}))
            .expect("valid");
        assert_eq!(m.subject, None, "a blank subject is no subject");
        let err = parse(json!({"to": "a@b.example", "subject": "a\rb", "template_id": "welcome"}))
            .unwrap_err();
        assert_eq!(fields(err), ["subject"], "one given is still checked");
        let err = parse(json!({"to": "a@b.example", "text": "t"})).unwrap_err();
        assert_eq!(fields(err), ["subject"], "a custom mail needs one");
    }

    #[test]
    fn every_failure_is_listed() {
        let err =
            parse(json!({"to": ["nope", "ok@b.example"], "subject": "a\nb", "variables": []}))
                .unwrap_err();
        assert_eq!(fields(err), ["to[0]", "subject", "variables", "text"]);
        let err = parse(json!({})).unwrap_err();
        assert_eq!(fields(err), ["to", "subject", "text"]);
        let many: Vec<String> = (0..=MAX_RECIPIENTS)
            .map(|i| format!("u{i}@b.example"))
            .collect();
        let err = parse(json!({"to": many, "subject": "s", "text": "t"})).unwrap_err();
        assert_eq!(fields(err), ["to"]);
        let err =
            parse(json!({"to": "a@b.example", "subject": "s", "text": "t", "template_id": "x y"}))
                .unwrap_err();
        assert_eq!(fields(err), ["template_id", "template_id"]);
    }

    #[test]
    fn the_request_hash_follows_the_content() {
        let a =
            parse(json!({"to": "a@b.example", "subject": "Hi", "text": "Hello"})).expect("valid");
        let b =
            parse(json!({"to": "a@b.example", "subject": "Hi", "text": "Hello!"})).expect("valid");
        assert_eq!(a.request_hash(), a.clone().request_hash());
        assert_ne!(a.request_hash(), b.request_hash());
    }
}
