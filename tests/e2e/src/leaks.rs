//! Secrets never leak: everything the suite saw (every answer read through
//! [`crate::Reply::read`], headers and body, and every line workerd wrote
//! to its stdout and stderr) is searched, after the last case, for every
//! secret the stack configured and every credential the cases sent. One
//! hit fails the run.
//!
//! What counts as a secret ([`Secret`]): the values of the functions'
//! secret bindings (`edge_stack::is_secret_binding`: service key, JWT secret,
//! webhook secrets, captcha secret, email API key, Storage JWT secret, S3
//! secret key), every user token the stack minted (`edge_stack::tokens::
//! minted`), every captcha token the captcha stand-in was asked about, and
//! whatever a case hands to [`remember`] (tokens it signed by hand). A JWT
//! is also looked for by its signature segment alone, which is what makes
//! it a credential: a log that cut the token at the dots would still leak
//! it.
//!
//! Left out: answers a case reads some other way than `Reply::read` (a few
//! read PostgREST directly), pages the browser test loads, and encodings
//! of a secret (base64 of it, say). The secrets here are all plain ASCII
//! without characters that JSON, URLs or HTTP headers escape, so the
//! literal value is what would show.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use aho_corasick::AhoCorasick;

/// Shorter values are not searched for: they would match by chance (a
/// placeholder captcha token like `"x"`), and no configured secret is this
/// short.
pub const MIN_SECRET_LEN: usize = 8;

/// A value that must never be seen, and its name for the report (never
/// the value itself).
#[derive(Debug, Clone)]
pub struct Secret {
    pub name: String,
    pub value: String,
}

impl Secret {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }

    /// What to search for: the whole value and, for a JWT, its signature.
    fn needles(&self) -> Vec<(String, &str)> {
        let mut needles = Vec::new();
        if self.value.len() >= MIN_SECRET_LEN {
            needles.push((self.name.clone(), self.value.as_str()));
        }
        if let Some(signature) = jwt_signature(&self.value) {
            needles.push((format!("{} (its signature)", self.name), signature));
        }
        needles
    }
}

/// The signature segment of a compact JWS (`header.payload.signature`,
/// each base64url), if `value` looks like one with a signature worth the
/// name (HS256's is 43 characters, ES256's 86).
fn jwt_signature(value: &str) -> Option<&str> {
    let mut parts = value.split('.');
    let (_, _, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (parts.next().is_none() && signature.len() >= 32 && base64url(signature)).then_some(signature)
}

/// One secret found somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// The secret's name, e.g. `SUPABASE_JWT_SECRET`.
    pub secret: String,
    /// Where: `workerd.log line 12`, `answer #3 (401 from http://...)`.
    pub place: String,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.secret, self.place)
    }
}

/// Searches texts for many secrets at once (Aho-Corasick: one pass over
/// each text, however many tokens the suite minted).
pub struct Scanner {
    names: Vec<String>,
    matcher: AhoCorasick,
}

impl Scanner {
    pub fn new(secrets: &[Secret]) -> anyhow::Result<Self> {
        let (names, needles): (Vec<String>, Vec<&str>) =
            secrets.iter().flat_map(Secret::needles).unzip();
        let matcher = AhoCorasick::new(&needles)?;
        Ok(Self { names, matcher })
    }

    /// How many values are searched for.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every secret in `text`, once per secret and line; `place` names the
    /// text, and a line number is added when it has more than one line.
    pub fn scan(&self, place: &str, text: &[u8]) -> Vec<Leak> {
        let multiline = text.contains(&b'\n');
        let mut leaks: Vec<Leak> = Vec::new();
        for found in self.matcher.find_overlapping_iter(text) {
            let place = if multiline {
                let line = 1 + text[..found.start()]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count();
                format!("{place} line {line}")
            } else {
                place.to_owned()
            };
            let leak = Leak {
                secret: self.names[found.pattern().as_usize()].clone(),
                place,
            };
            if !leaks.contains(&leak) {
                leaks.push(leak);
            }
        }
        leaks
    }
}

/// An answer as the suite saw it, kept for the scan at the end.
struct Seen {
    place: String,
    text: Vec<u8>,
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
static REMEMBERED: Mutex<Vec<Secret>> = Mutex::new(Vec::new());

/// Keeps an answer's status line, headers and body for the scan.
pub(crate) fn record(
    url: &reqwest::Url,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) {
    let mut text = Vec::with_capacity(body.len() + 256);
    for (name, value) in headers {
        text.extend_from_slice(name.as_str().as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(value.as_bytes());
        text.push(b'\n');
    }
    text.push(b'\n');
    text.extend_from_slice(body);
    // The query is left out of the name: it is the request's, and a signed
    // URL's is long.
    let mut url = url.clone();
    url.set_query(None);
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    let place = format!("answer #{} ({status} from {url})", seen.len() + 1);
    seen.push(Seen { place, text });
}

/// Adds a credential a case sent that the stack did not mint (a token it
/// signed by hand, say) to the values searched for at the end.
pub fn remember(name: impl Into<String>, value: impl Into<String>) {
    REMEMBERED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Secret::new(name, value));
}

/// What the scan looked at and found.
pub struct Verdict {
    pub secrets: usize,
    pub answers: usize,
    pub log_lines: usize,
    pub leaks: Vec<Leak>,
}

/// Scans everything recorded so far and `workerd_log` for `secrets` and
/// everything [`remember`]ed.
pub fn check(mut secrets: Vec<Secret>, workerd_log: &[u8]) -> anyhow::Result<Verdict> {
    secrets.extend(
        REMEMBERED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned(),
    );
    let scanner = Scanner::new(&secrets)?;
    let mut leaks = scanner.scan("workerd.log", workerd_log);
    let seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    for answer in seen.iter() {
        leaks.extend(scanner.scan(&answer.place, &answer.text));
    }
    Ok(Verdict {
        secrets: scanner.len(),
        answers: seen.len(),
        log_lines: workerd_log.iter().filter(|b| **b == b'\n').count(),
        leaks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
        eyJzdWIiOiIxMTExIiwicm9sZSI6ImF1dGhlbnRpY2F0ZWQifQ.\
        c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJl";

    fn scanner() -> Scanner {
        Scanner::new(&[
            Secret::new("SUPABASE_JWT_SECRET", "super-secret-jwt-token"),
            Secret::new("user token", JWT),
            Secret::new("too short", "x"),
        ])
        .expect("scanner")
    }

    #[test]
    fn finds_a_secret_and_names_the_line() {
        let log = b"{\"status\":200}\n{\"error\":\"bad super-secret-jwt-token here\"}\n";
        assert_eq!(
            scanner().scan("workerd.log", log),
            [Leak {
                secret: "SUPABASE_JWT_SECRET".into(),
                place: "workerd.log line 2".into(),
            }]
        );
    }

    #[test]
    fn finds_a_jwt_whole_and_by_its_signature_alone() {
        let whole = scanner().scan("answer", format!("Bearer {JWT}").as_bytes());
        let names: Vec<&str> = whole.iter().map(|l| l.secret.as_str()).collect();
        assert_eq!(names, ["user token", "user token (its signature)"]);

        let signature = JWT.rsplit('.').next().expect("signature");
        let cut = scanner().scan("answer", format!("sig={signature}").as_bytes());
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].secret, "user token (its signature)");
    }

    #[test]
    fn a_clean_text_and_short_values_find_nothing() {
        let scanner = scanner();
        // "x" is too short to search for; header and payload are not secret.
        let header = JWT.split('.').next().expect("header");
        let text = format!("x marks the spot; {header}; super-secret-jwt-toke");
        assert_eq!(scanner.scan("answer", text.as_bytes()), []);
        assert_eq!(scanner.len(), 3, "the secret, the token, its signature");
    }

    /// The path every answer takes: `Reply::read` records it, and the
    /// check at the end finds a secret in its headers or its body.
    #[test]
    fn recorded_answers_are_checked_headers_and_body() {
        let url = reqwest::Url::parse("http://127.0.0.1:1/emails?token=no").expect("url");
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-debug",
            "key re_leaked_in_a_header".parse().expect("header"),
        );
        record(
            &url,
            500,
            &headers,
            b"{\"detail\":\"whsec_leaked_in_a_body\"}",
        );
        let secrets = vec![
            Secret::new("EMAIL_API_KEY", "re_leaked_in_a_header"),
            Secret::new("STRIPE_WEBHOOK_SECRET", "whsec_leaked_in_a_body"),
        ];
        let verdict = check(secrets, b"a clean log line\n").expect("check");
        let mut found: Vec<String> = verdict.leaks.iter().map(ToString::to_string).collect();
        found.sort();
        // Headers first, one per line, then an empty line, then the body.
        let place = "(500 from http://127.0.0.1:1/emails)";
        for (secret, line) in [("EMAIL_API_KEY", 1), ("STRIPE_WEBHOOK_SECRET", 3)] {
            assert!(
                found
                    .iter()
                    .any(|l| l.starts_with(&format!("{secret} in answer #"))
                        && l.ends_with(&format!("{place} line {line}"))),
                "{secret}: {found:?}"
            );
        }
        assert_eq!(verdict.log_lines, 1);
    }

    #[test]
    fn only_three_base64url_segments_make_a_signature() {
        assert!(jwt_signature(JWT).is_some());
        assert!(jwt_signature("a.b").is_none());
        assert!(jwt_signature("a.b.c.d").is_none());
        assert!(jwt_signature("a.b.short").is_none());
        assert!(jwt_signature(&format!("a.b.{}", "!".repeat(40))).is_none());
    }
}
