//! A ticket submission as a web form or a JSON client sends it, and its
//! validation: every field is checked and every failure reported at once,
//! before anything else happens (no database call, no captcha call).
//!
//! Limits mirror the schema (`tickets.title varchar(255)`, `messages.content
//! varchar(5000)`, ...), counted in characters as Postgres counts them, so a
//! submission that validates here is never cut off or rejected by the
//! database for its size.

use edge_core::{Error, FieldErrors};
use serde::{Deserialize, Serialize};

pub const TITLE_MAX: usize = 255;
pub const CONTENT_MAX: usize = 5000;
pub const EMAIL_MAX: usize = 255;
pub const NAME_MAX: usize = 255;
pub const CATEGORY_MAX: usize = 100;
/// Turnstile documents tokens of up to 2048 characters.
pub const CAPTCHA_TOKEN_MAX: usize = 2048;

/// The body as sent. Every field is optional here so that a missing one is
/// a field error in the 422, not a deserialisation failure. Unknown fields
/// (a submit button's name) are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct RawSubmission {
    pub intake_key: Option<String>,
    pub title: Option<String>,
    pub content: Option<String>,
    pub customer_email: Option<String>,
    #[serde(alias = "name")]
    pub customer_name: Option<String>,
    pub category: Option<String>,
    pub priority: Option<String>,
    /// JSON clients send the token here...
    pub captcha_token: Option<String>,
    /// ...forms under the field the provider's widget fills.
    #[serde(rename = "cf-turnstile-response")]
    pub turnstile_response: Option<String>,
    #[serde(rename = "h-captcha-response")]
    pub hcaptcha_response: Option<String>,
    /// The honeypot: hidden from people by the form, filled in by bots.
    pub website: Option<String>,
}

impl RawSubmission {
    /// A filled honeypot: the sender is a bot. It gets a success-looking
    /// answer and nothing is written.
    pub fn is_bot(&self) -> bool {
        self.website
            .as_deref()
            .is_some_and(|v| !v.trim().is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
}

/// A submission whose every field passed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Submission {
    pub intake_key: String,
    pub title: String,
    pub content: String,
    pub customer_email: String,
    pub customer_name: Option<String>,
    pub category: Option<String>,
    pub priority: Option<Priority>,
    #[serde(skip)]
    pub captcha_token: String,
}

impl Submission {
    /// Identifies the submission's content for `Idempotency-Key` replays: a
    /// retry with the same key must carry the same ticket. The captcha token
    /// is left out, as a retry may carry a fresh one.
    pub fn request_hash(&self) -> String {
        edge_core::sha256_hex(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Validates every field, returning all failures in one 422.
pub fn validate(raw: RawSubmission) -> Result<Submission, Error> {
    let mut errors = FieldErrors::new();
    let mut check = |field: &str, value: Option<String>, rule: Rule| {
        errors.check(field, rule.apply(value)).flatten()
    };

    let intake_key = check("intake_key", raw.intake_key, Rule::required(64).key());
    let title = check("title", raw.title, Rule::required(TITLE_MAX).single_line());
    let content = check("content", raw.content, Rule::required(CONTENT_MAX));
    let customer_email = check(
        "customer_email",
        raw.customer_email,
        Rule::required(EMAIL_MAX).email(),
    );
    let customer_name = check(
        "customer_name",
        raw.customer_name,
        Rule::optional(NAME_MAX).single_line(),
    );
    let category = check(
        "category",
        raw.category,
        Rule::optional(CATEGORY_MAX).single_line(),
    );
    let priority = check("priority", raw.priority, Rule::optional(16).single_line());
    // The first field that holds a token: a JSON client or a form may send
    // an empty `captcha_token` beside the widget's own field, and that
    // empty one used to hide the real token ("complete the captcha").
    let token = [
        raw.captcha_token,
        raw.turnstile_response,
        raw.hcaptcha_response,
    ]
    .into_iter()
    .flatten()
    .find(|t| !t.trim().is_empty());
    let captcha_token = check(
        "captcha_token",
        token,
        Rule::required(CAPTCHA_TOKEN_MAX).captcha(),
    );

    let priority = match priority.as_deref() {
        None => None,
        Some("low") => Some(Priority::Low),
        Some("medium") => Some(Priority::Medium),
        Some("high") => Some(Priority::High),
        Some(_) => {
            errors.add("priority", "must be low, medium or high");
            None
        }
    };

    errors.finish(|| {
        Some(Submission {
            intake_key: intake_key?,
            title: title?,
            content: content?,
            customer_email: customer_email?,
            customer_name,
            category,
            priority,
            captcha_token: captcha_token?,
        })
    })
}

/// One field's rule. Values are trimmed; an empty value counts as absent.
#[derive(Clone, Copy)]
struct Rule {
    required: bool,
    max_chars: usize,
    single_line: bool,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Key,
    Email,
    Captcha,
}

impl Rule {
    fn required(max_chars: usize) -> Self {
        Self {
            required: true,
            max_chars,
            single_line: false,
            kind: Kind::Text,
        }
    }
    fn optional(max_chars: usize) -> Self {
        Self {
            required: false,
            ..Self::required(max_chars)
        }
    }
    fn single_line(self) -> Self {
        Self {
            single_line: true,
            ..self
        }
    }
    fn key(self) -> Self {
        Self {
            kind: Kind::Key,
            ..self
        }
    }
    fn email(self) -> Self {
        Self {
            kind: Kind::Email,
            single_line: true,
            ..self
        }
    }
    fn captcha(self) -> Self {
        Self {
            kind: Kind::Captcha,
            single_line: true,
            ..self
        }
    }

    fn apply(self, value: Option<String>) -> Result<Option<String>, String> {
        let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let Some(value) = value else {
            return match (self.required, self.kind) {
                (false, _) => Ok(None),
                (true, Kind::Captcha) => Err("complete the captcha".into()),
                (true, _) => Err("is required".into()),
            };
        };
        let chars = value.chars().count();
        if chars > self.max_chars {
            return Err(format!(
                "must be at most {} characters (got {chars})",
                self.max_chars
            ));
        }
        // Line breaks and tabs are fine in a message body; no other control
        // character belongs in a ticket (they hide text and break displays).
        let allowed = |c: char| !self.single_line && matches!(c, '\n' | '\r' | '\t');
        if value.chars().any(|c| c.is_control() && !allowed(c)) {
            return Err("must not contain control characters".into());
        }
        match self.kind {
            Kind::Key if !is_intake_key(&value) => {
                Err("must be 3 to 64 lowercase letters, digits, '-' or '_'".into())
            }
            Kind::Email if !email_address::EmailAddress::is_valid(&value) => {
                Err("is not a valid email address".into())
            }
            _ => Ok(Some(value)),
        }
    }
}

fn is_intake_key(value: &str) -> bool {
    (3..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_testing::errors::fields;

    fn raw() -> RawSubmission {
        RawSubmission {
            intake_key: Some("acme".into()),
            title: Some("  Printer on fire  ".into()),
            content: Some("It started at 9.\nThen it spread.".into()),
            customer_email: Some("ada@example.com".into()),
            captcha_token: Some("tok".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_submission_is_trimmed() {
        let s = validate(raw()).expect("valid");
        assert_eq!(s.title, "Printer on fire");
        assert_eq!(s.priority, None);
        assert_eq!(s.customer_name, None);
    }

    #[test]
    fn every_failing_field_is_reported_at_once() {
        let err = validate(RawSubmission {
            intake_key: Some("Bad Key!".into()),
            title: Some("   ".into()),
            content: None,
            customer_email: Some("not-an-email".into()),
            priority: Some("urgent".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            fields(err),
            [
                "intake_key",
                "title",
                "content",
                "customer_email",
                "captcha_token",
                "priority"
            ]
        );
    }

    #[test]
    fn sizes_follow_the_schema_in_characters() {
        let mut ok = raw();
        ok.title = Some("é".repeat(TITLE_MAX)); // 510 bytes, 255 characters
        assert!(validate(ok).is_ok());

        type Oversize = fn(&mut RawSubmission);
        let cases: Vec<(&str, Oversize)> = vec![
            ("title", |r| r.title = Some("x".repeat(TITLE_MAX + 1))),
            ("content", |r| r.content = Some("x".repeat(CONTENT_MAX + 1))),
            ("customer_name", |r| {
                r.customer_name = Some("x".repeat(NAME_MAX + 1))
            }),
            ("category", |r| {
                r.category = Some("x".repeat(CATEGORY_MAX + 1))
            }),
            ("customer_email", |r| {
                r.customer_email = Some(format!("{}@example.com", "a".repeat(250)))
            }),
            ("captcha_token", |r| {
                r.captcha_token = Some("t".repeat(CAPTCHA_TOKEN_MAX + 1))
            }),
        ];
        for (field, mutate) in cases {
            let mut r = raw();
            mutate(&mut r);
            assert_eq!(fields(validate(r).unwrap_err()), [field]);
        }
    }

    #[test]
    fn control_characters_are_refused_but_line_breaks_in_content_are_not() {
        let mut r = raw();
        r.title = Some("a\u{0007}b".into());
        r.content = Some("line\r\n\tindented\u{0000}".into());
        assert_eq!(fields(validate(r).unwrap_err()), ["title", "content"]);

        let mut r = raw();
        r.title = Some("two\nlines".into());
        assert_eq!(fields(validate(r).unwrap_err()), ["title"]);
    }

    #[test]
    fn captcha_token_comes_from_any_provider_field() {
        for (turnstile, hcaptcha) in [(Some("t"), None), (None, Some("h"))] {
            let mut r = raw();
            r.captcha_token = None;
            r.turnstile_response = turnstile.map(str::to_owned);
            r.hcaptcha_response = hcaptcha.map(str::to_owned);
            let token = validate(r).expect("valid").captcha_token;
            assert_eq!(Some(token.as_str()), turnstile.or(hcaptcha));
        }
    }

    /// Regression (issue 11 item 14, found by schemathesis): an empty
    /// `captcha_token` beside a filled widget field was a 422 "complete the
    /// captcha". Seen failing before the fix: `expect("valid")` panicked.
    #[test]
    fn an_empty_captcha_field_does_not_hide_the_widgets_token() {
        for blank in ["", "  "] {
            let mut r = raw();
            r.captcha_token = Some(blank.into());
            r.turnstile_response = None;
            r.hcaptcha_response = Some("h".into());
            assert_eq!(validate(r).expect("valid").captcha_token, "h");
        }
    }

    #[test]
    fn form_bodies_use_native_field_names_and_a_honeypot() {
        let body = "intake_key=acme&title=Hi&content=Body&customer_email=a%40b.example&cf-turnstile-response=tok&website=&submit=Send";
        let raw: RawSubmission = serde_urlencoded::from_str(body).expect("form");
        assert!(!raw.is_bot());
        assert_eq!(validate(raw).expect("valid").captcha_token, "tok");
        let bot: RawSubmission =
            serde_urlencoded::from_str("website=http%3A%2F%2Fspam.example").expect("form");
        assert!(bot.is_bot());
    }

    #[test]
    fn the_request_hash_ignores_the_captcha_token_only() {
        let a = validate(raw()).expect("valid");
        let mut b = a.clone();
        b.captcha_token = "another".into();
        assert_eq!(a.request_hash(), b.request_hash());
        b.title.push('!');
        assert_ne!(a.request_hash(), b.request_hash());
    }
}
