//! What each fuzz target feeds the project's parsers and what it demands of
//! them, as plain functions over bytes.
//!
//! The cargo-fuzz crate in `fuzz/` is only glue (`fuzz_target!(|data|
//! edge_fuzz::jwt(data))`), so the very same checks run in two places:
//! under libFuzzer's coverage-guided search (`scripts/fuzz`), and in this
//! workspace's plain `cargo test` (`tests/replay.rs`), which replays every
//! committed seed and every input a fuzzer ever crashed on
//! (`fuzz/regressions/<target>/`). A regression therefore fails `cargo test`
//! without the fuzzer installed.
//!
//! Every target calls the entry point the handler itself calls (none is
//! copied here) and panics when a guarantee breaks: a panic in the code under
//! test is one, and so is an answer the guarantee rules out (a 5xx for bad
//! input, a signature accepted over other bytes, an object path outside its
//! prefix). Nothing here does I/O: the verifier has no JWKS and the signers
//! are the local ones, so each future is ready at its first poll
//! ([`ready`] says so if not).
//!
//! Inputs that carry several fields split on a NUL byte ([`fields`]); a
//! leading byte, where there is one, picks a variant (provider, content
//! type, mode). Either is easy for libFuzzer's mutations to keep or change.

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edge_attachments::sign::{self, Access, Signer, SignerConfig};
use edge_attachments::UploadLimits;
use edge_auth::{JwtConfig, Policy, Verifier};
use edge_billing::event::{Event, Provider};
use edge_billing::signature::{self, Failure, Secrets};
use edge_core::{Error, Method, Request};
// A sleep that never ends (nothing configured here waits on a timer), and
// the variables the parts are configured from.
use edge_testing::{clock::never, vars};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A target: takes any bytes, panics when a guarantee breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name cargo-fuzz and `fuzz/regressions/` use.
pub const TARGETS: &[(&str, Target)] = &[
    ("jwt", jwt),
    ("webhook_signature", webhook_signature),
    ("stripe_payload", stripe_payload),
    ("paddle_payload", paddle_payload),
    ("lemon_squeezy_payload", lemon_squeezy_payload),
    ("http_request", http_request),
    ("intake_submission", intake_submission),
    ("mail_message", mail_message),
    ("attachments_upload", attachments_upload),
    ("attachments_sign", attachments_sign),
];

/// The clock every target runs at (2027-01-15), so inputs replay the same.
pub const NOW: i64 = 1_800_000_000;

/// The HS256 secret the `jwt` target's verifier holds. Seeds are signed
/// with nothing (the target signs what it is given itself), so no input can
/// carry a valid signature by this key except one the target made.
pub const JWT_SECRET: &str = "fuzz-jwt-secret-of-at-least-thirty-two-bytes";

/// The webhook secret the `webhook_signature` target verifies with; the
/// seeds' headers are signed with [`SEED_WEBHOOK_SECRET`] instead, so a seed
/// has the right shape but never the right signature.
pub const WEBHOOK_SECRET: &str = "whsec_fuzz_target_secret";
pub const SEED_WEBHOOK_SECRET: &str = "whsec_fuzz_seed_secret";
const WEBHOOK_TOLERANCE_SECS: u64 = 300;

/// Polls a future that must not wait for anything: the targets are set up
/// without network, so `Pending` means a parser went to the network.
fn ready<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a future waited for I/O although the target configures none"),
    }
}

/// `N` fields separated by NUL bytes; missing ones are empty, the last one
/// takes the rest (NULs included).
pub fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for (i, slot) in out.iter_mut().enumerate() {
        if i + 1 == N {
            *slot = rest;
            break;
        }
        match rest.iter().position(|&b| b == 0) {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + 1..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
            }
        }
    }
    out
}

/// Header values and tokens arrive as strings (workerd hands the Worker
/// `String`s); invalid UTF-8 becomes U+FFFD as it would there.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Bad input is the client's fault: a 4xx, never a 5xx.
fn assert_client_error(err: &Error, what: &str) {
    let status = err.status();
    assert!(
        (400..500).contains(&status),
        "{what}: bad input answered {status}, not a 4xx: {err:?}"
    );
}

// ---------------------------------------------------------------- crates/auth

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        // No JWKS: ES256/RS256 tokens are refused before any fetch, so
        // verification never leaves the process.
        let config = JwtConfig::from_vars(&vars::of(&[("SUPABASE_JWT_SECRET", JWT_SECRET)]).vars())
            .expect("the fuzz JWT config is valid");
        Verifier::new(config, reqwest::Client::new(), never)
    })
}

/// `crates/auth`: the bearer header and token parsing, JWT header and claims
/// decoding, and the verification rules.
///
/// First byte even: the rest is a token (and an `Authorization` value) as
/// sent; none may verify, since none is signed with [`JWT_SECRET`]. Odd:
/// the rest is `header JSON \0 claims JSON`, which the target encodes and
/// signs with [`JWT_SECRET`] itself. Accepted, the token must have said
/// HS256 and hold claims the rules admit (audience, role, not expired);
/// and with any one byte of its signed part changed it must be refused.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let verifier = verifier();
    if mode % 2 == 0 {
        let token = text(rest);
        if let Ok(claims) = ready(verifier.verify(&token, NOW)) {
            panic!("a token not signed with the secret verified: {claims:?}");
        }
        for header in [token.clone(), format!("Bearer {token}")] {
            let req = Request::new(Method::Post, "/emails").with_header("authorization", &header);
            match ready(verifier.authenticate(&req, NOW, Policy::AnyUser)) {
                Ok(user) => panic!("an unsigned Authorization header was admitted: {user:?}"),
                Err(err) => assert_eq!(err.status(), 401, "{err:?}"),
            }
        }
        return;
    }

    let [header, claims] = fields::<2>(rest);
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac =
        Hmac::<Sha256>::new_from_slice(JWT_SECRET.as_bytes()).expect("HMAC takes any key");
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let token = format!("{signed}.{signature}");

    match ready(verifier.verify(&token, NOW)) {
        Err(err) => assert_eq!(err.status(), 401, "{err:?}"),
        Ok(claims) => {
            let alg = serde_json::from_slice::<serde_json::Value>(header)
                .ok()
                .and_then(|h| h["alg"].as_str().map(str::to_owned));
            assert_eq!(alg.as_deref(), Some("HS256"), "accepted under another alg");
            assert!(
                claims.aud.contains(JwtConfig::DEFAULT_AUDIENCE),
                "{claims:?}"
            );
            assert!(!claims.role.is_empty(), "accepted without a role");
            let leeway = i64::from(JwtConfig::DEFAULT_LEEWAY_SECS);
            assert!(claims.exp + leeway >= NOW, "accepted expired: {claims:?}");
            if let Some(nbf) = claims.nbf {
                assert!(nbf - leeway <= NOW, "accepted before nbf: {claims:?}");
            }
            // Any other byte where the signature covers must fail: flip one
            // (an ASCII byte xor 1 stays ASCII, and never becomes a dot).
            let at = usize::from(mode) % signed.len();
            let mut tampered = token.into_bytes();
            tampered[at] ^= 1;
            let tampered = String::from_utf8(tampered).expect("still ASCII");
            if let Ok(claims) = ready(verifier.verify(&tampered, NOW)) {
                panic!("a token changed at byte {at} still verified: {claims:?}");
            }
        }
    }
}

// ------------------------------------------------------------- crates/billing

const PROVIDERS: [Provider; 3] = [Provider::Stripe, Provider::LemonSqueezy, Provider::Paddle];

/// `crates/billing`: the three signature header schemes (`Stripe-Signature`,
/// `X-Signature`, `Paddle-Signature`). Input: `provider byte, header \0 body`.
///
/// The header as sent never verifies (it was not made with
/// [`WEBHOOK_SECRET`]); the provider's own signature of the body, made now,
/// does; the same signature over the body with one byte changed, or one
/// byte longer, does not; signed outside the tolerance, it is refused.
pub fn webhook_signature(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let provider = PROVIDERS[usize::from(pick) % PROVIDERS.len()];
    let [header, body] = fields::<2>(rest);
    let header = text(header);
    let secrets = Secrets::new(vec!["whsec_another".to_owned(), WEBHOOK_SECRET.to_owned()]);
    let now = u64::try_from(NOW).expect("positive");
    let verify = |header: Option<&str>, body: &[u8]| {
        signature::verify(
            provider,
            header,
            body,
            &secrets,
            WEBHOOK_TOLERANCE_SECS,
            now,
        )
    };

    assert_eq!(verify(None, body), Err(Failure::Missing));
    assert!(
        verify(Some(&header), body).is_err(),
        "{provider:?}: a header not made with the secret verified: {header:?}"
    );

    // Signed a little while ago, or a little ahead (clocks differ).
    let skew = u64::from(pick) % WEBHOOK_TOLERANCE_SECS;
    let at = if pick % 2 == 0 {
        now - skew
    } else {
        now + skew
    };
    let signed = signature::sign(provider, WEBHOOK_SECRET, at, body);
    assert_eq!(
        verify(Some(&signed), body),
        Ok(()),
        "{provider:?}: its own signature was refused: {signed:?}"
    );

    let mut changed = body.to_vec();
    match changed.get_mut(usize::from(pick) % body.len().max(1)) {
        Some(byte) => *byte ^= 1 << (pick % 8),
        None => changed.push(b'{'),
    }
    assert_eq!(
        verify(Some(&signed), &changed),
        Err(Failure::Mismatch),
        "{provider:?}: a signature verified over other bytes"
    );
    let mut longer = body.to_vec();
    longer.push(b' ');
    assert_eq!(verify(Some(&signed), &longer), Err(Failure::Mismatch));

    if provider != Provider::LemonSqueezy {
        let stale = signature::sign(
            provider,
            WEBHOOK_SECRET,
            now - WEBHOOK_TOLERANCE_SECS - 1,
            body,
        );
        assert_eq!(verify(Some(&stale), body), Err(Failure::OutsideTolerance));
    }
}

/// A provider's payload parser over a (verified) body: a 4xx or an event
/// the database can take: this provider's, with an id and a type, and
/// times `apply_billing_event` can cast to `timestamptz` (one that did not
/// would fail the event on every redelivery).
fn payload(provider: Provider, parse: fn(&[u8]) -> Result<Event, Error>, body: &[u8]) {
    match parse(body) {
        Err(err) => assert_client_error(&err, provider.as_str()),
        Ok(event) => {
            assert_eq!(event.provider, provider);
            assert!(!event.kind.is_empty(), "an event without a type: {event:?}");
            assert!(
                !event.event_id.is_empty(),
                "an event without an id: {event:?}"
            );
            let json = serde_json::to_value(&event).expect("an event serialises for the database");
            assert!(json["occurred_at"].is_string(), "{json}");
            assert_times_cast(&json);
        }
    }
}

/// Every `*_at` string in the event is a time PostgreSQL's `timestamptz`
/// reads: RFC 3339, years 0001 to 9999 (it refuses year 0, a sign, or five
/// digits).
fn assert_times_cast(json: &serde_json::Value) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if let (true, Some(time)) = (key.ends_with("_at"), value.as_str()) {
                    let parsed = chrono::DateTime::parse_from_rfc3339(time)
                        .unwrap_or_else(|e| panic!("{key} {time:?} is not RFC 3339: {e}"));
                    let year = chrono::Datelike::year(&parsed.naive_utc());
                    assert!((1..=9999).contains(&year), "{key} {time:?}: year {year}");
                }
                assert_times_cast(value);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(assert_times_cast),
        _ => {}
    }
}

/// `crates/billing`: Stripe's payload parser (`stripe::parse`).
pub fn stripe_payload(data: &[u8]) {
    payload(Provider::Stripe, edge_billing::stripe::parse, data);
}

/// `crates/billing`: Paddle's payload parser (`paddle::parse`).
pub fn paddle_payload(data: &[u8]) {
    payload(Provider::Paddle, edge_billing::paddle::parse, data);
}

/// `crates/billing`: Lemon Squeezy's payload parser (`lemon_squeezy::parse`).
pub fn lemon_squeezy_payload(data: &[u8]) {
    payload(
        Provider::LemonSqueezy,
        edge_billing::lemon_squeezy::parse,
        data,
    );
}

// ---------------------------------------------------------------- crates/core

/// Content types a body may come with; the first byte of an input picks one.
const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("application/json; charset=utf-8"),
    Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
    Some("application/problem+json"),
    Some("text/plain"),
    Some(""),
    None,
];

fn request(path: &str, content_type: u8, body: &[u8]) -> Request {
    let mut req = Request::new(Method::Post, path).with_body(body);
    if let Some(ct) = CONTENT_TYPES[usize::from(content_type) % CONTENT_TYPES.len()] {
        req = req.with_header("content-type", ct);
    }
    req
}

/// `crates/core`'s request parsing every route shares: JSON and
/// form-urlencoded bodies (`Request::body_as`, `Request::json`), the query,
/// and the `Idempotency-Key` header. Input: `content type byte,
/// Idempotency-Key \0 query \0 body`.
///
/// A key is accepted exactly when it is 1-255 printable ASCII characters
/// after trimming (else absent when blank, else 400); an unreadable body is
/// a 4xx; a form read as pairs writes back and reads again as the same
/// pairs.
pub fn http_request(data: &[u8]) {
    let Some((&content_type, rest)) = data.split_first() else {
        return;
    };
    let [key, query, body] = fields::<3>(rest);
    let (key, query) = (text(key), text(query));
    let req =
        request(&format!("/x?{query}"), content_type, body).with_header("idempotency-key", &key);

    let trimmed = key.trim();
    match req.idempotency_key() {
        Ok(None) => assert!(trimmed.is_empty(), "key {key:?} ignored"),
        Ok(Some(k)) => {
            assert_eq!(k, trimmed);
            assert!(
                (1..=255).contains(&k.len()),
                "key of {} bytes taken",
                k.len()
            );
            assert!(k.bytes().all(|b| b.is_ascii_graphic()), "key {k:?} taken");
        }
        Err(err) => {
            assert_eq!(err.status(), 400, "{err:?}");
            assert!(
                trimmed.len() > 255 || !trimmed.bytes().all(|b| b.is_ascii_graphic()),
                "a good key {trimmed:?} refused"
            );
        }
    }
    let _ = req.query_param("a");
    let _ = req.route_is("/x");

    if let Err(err) = req.body_as::<serde_json::Value>() {
        assert_client_error(&err, "body as JSON value");
    }
    match req.body_as::<Vec<(String, String)>>() {
        Err(err) => assert_client_error(&err, "body as pairs"),
        Ok((pairs, edge_core::BodyKind::Form)) => {
            let again = serde_urlencoded::to_string(&pairs).expect("pairs encode");
            let back: Vec<(String, String)> =
                serde_urlencoded::from_str(&again).expect("what we wrote reads back");
            assert_eq!(
                back, pairs,
                "form pairs did not round-trip through {again:?}"
            );
        }
        Ok(_) => {}
    }
}

// -------------------------------------------------------------- crates/intake

/// Tags the intake's own pages are made of. Any other `<` would have come
/// from the visitor's input unescaped.
const PAGE_TAGS: &[&str] = &[
    "!doctype", "html", "head", "meta", "title", "body", "h1", "p", "ul", "li", "strong", "a",
];

/// A form post's error page must contain no markup from the input: every
/// tag is one of [`PAGE_TAGS`], and the one attribute that takes input
/// (`href`, the `Referer`) is an http(s) URL closed by its own quote.
fn assert_page_is_ours(html: &str) {
    for (at, _) in html.match_indices('<') {
        let name: String = html[at + 1..]
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect::<String>()
            .to_ascii_lowercase();
        assert!(PAGE_TAGS.contains(&name.as_str()), "tag {name:?} in {html}");
    }
    // `<` never comes from the input, so every `<a href="` is ours.
    for (at, _) in html.match_indices("<a href=\"") {
        let value = &html[at + 9..];
        let end = value.find('"').expect("href closed");
        assert!(
            value.starts_with("https://") || value.starts_with("http://"),
            "href {:?}",
            &value[..end]
        );
        assert!(value[end + 1..].starts_with('>'), "href broke out: {html}");
    }
}

/// `crates/intake`: a ticket submission as a form or JSON, with its captcha
/// fields (`captcha_token`, `cf-turnstile-response`, `h-captcha-response`)
/// and honeypot, and the error page a form post gets. Input: `content type
/// byte, Referer \0 body`.
///
/// An accepted submission is within every limit the schema has (so the
/// database never refuses it for its shape); a refused one is a 4xx, and
/// its page carries no markup from the input.
pub fn intake_submission(data: &[u8]) {
    use edge_intake::submission::{self, RawSubmission};
    let Some((&content_type, rest)) = data.split_first() else {
        return;
    };
    let [referer, body] = fields::<2>(rest);
    let referer = text(referer);
    let req = request("/tickets", content_type, body);
    let refused = |err: Error| {
        assert_client_error(&err, "submission");
        let page = edge_intake::pages::error_page(&err, Some(&referer));
        assert_eq!(page.status, err.status());
        assert_page_is_ours(std::str::from_utf8(&page.body).expect("pages are UTF-8"));
    };
    let raw = match req.body_as::<RawSubmission>() {
        Ok((raw, _)) => raw,
        Err(err) => return refused(err),
    };
    if raw.is_bot() {
        return;
    }
    let s = match submission::validate(raw) {
        Ok(s) => s,
        Err(err) => return refused(err),
    };
    let one_line = |v: &str| !v.chars().any(char::is_control);
    let within = |v: &str, max: usize| (1..=max).contains(&v.chars().count()) && v.trim() == v;
    assert!(
        within(&s.title, submission::TITLE_MAX) && one_line(&s.title),
        "{s:?}"
    );
    assert!(within(&s.content, submission::CONTENT_MAX), "{s:?}");
    assert!(
        s.content
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')),
        "{s:?}"
    );
    assert!(within(&s.customer_email, submission::EMAIL_MAX), "{s:?}");
    assert!(s.customer_email.contains('@'), "{s:?}");
    assert!(
        (3..=64).contains(&s.intake_key.len())
            && s.intake_key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b)),
        "{s:?}"
    );
    for v in [&s.customer_name, &s.category].into_iter().flatten() {
        assert!(within(v, submission::NAME_MAX) && one_line(v), "{s:?}");
    }
    assert!(
        within(&s.captcha_token, submission::CAPTCHA_TOKEN_MAX) && one_line(&s.captcha_token),
        "captcha token {:?}",
        s.captcha_token
    );
    let hash = edge_intake::captcha::token_hash(&s.captcha_token);
    assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(s.request_hash().len(), 64);
}

// ---------------------------------------------------------------- crates/mail

/// `crates/mail`: the body of `POST /emails`, read and validated as the
/// handler does (`validate(req.json()?)`). Input: `content type byte,
/// body`.
///
/// Accepted: 1-50 trimmed addresses without control characters; a one-line subject within
/// RFC 5322's line; bodies within their limits; a template or a body, not
/// both. Refused: a 4xx.
pub fn mail_message(data: &[u8]) {
    use edge_mail::message::{self, RawMessage};
    let Some((&content_type, body)) = data.split_first() else {
        return;
    };
    let req = request("/emails", content_type, body);
    let m = match req.json::<RawMessage>().and_then(message::validate) {
        Ok(m) => m,
        Err(err) => return assert_client_error(&err, "mail"),
    };
    assert!((1..=message::MAX_RECIPIENTS).contains(&m.to.len()), "{m:?}");
    for to in &m.to {
        assert!(
            to.len() <= 254 && to.trim() == to && to.contains('@'),
            "{to:?}"
        );
    }
    if let Some(subject) = &m.subject {
        assert!(subject.chars().count() <= message::SUBJECT_MAX);
        assert!(!subject.chars().any(char::is_control), "{subject:?}");
    }
    for body in [&m.html, &m.text].into_iter().flatten() {
        assert!(body.chars().count() <= message::BODY_MAX);
    }
    match &m.template {
        Some((id, variables)) => {
            assert!(m.html.is_none() && m.text.is_none(), "{m:?}");
            assert!((1..=message::TEMPLATE_ID_MAX).contains(&id.len()), "{id:?}");
            assert!(variables.is_object(), "{variables:?}");
        }
        None => assert!(m.html.is_some() || m.text.is_some(), "{m:?}"),
    }
    let _ = (m.mail_type(), m.content(), m.request_hash());
}

// --------------------------------------------------------- crates/attachments

/// Both signers that sign without a network call, configured as the local
/// stack does: `storage-local` and `s3` (virtual-hosted).
fn signers() -> &'static [(Signer, &'static str)] {
    static SIGNERS: OnceLock<Vec<(Signer, &'static str)>> = OnceLock::new();
    SIGNERS.get_or_init(|| {
        let local = vars::of(&[
            ("ATTACHMENT_SIGNER", "storage-local"),
            ("STORAGE_URL", "http://127.0.0.1:5000/storage/v1"),
            (
                "STORAGE_JWT_SECRET",
                "fuzz-storage-secret-of-at-least-32-bytes",
            ),
        ]);
        let s3 = vars::of(&[
            ("ATTACHMENT_SIGNER", "s3"),
            ("S3_ENDPOINT", "https://s3.example.com"),
            ("S3_REGION", "auto"),
            ("S3_BUCKET", "attachments"),
            ("S3_ACCESS_KEY_ID", "AKIDFUZZ"),
            ("S3_SECRET_ACCESS_KEY", "fuzz-s3-secret"),
        ]);
        [
            (local, "http://127.0.0.1:5000/storage/v1/object/"),
            (s3, "https://attachments.s3.example.com/"),
        ]
        .into_iter()
        .map(|(v, base)| {
            let config =
                SignerConfig::from_vars(&v.vars()).expect("the fuzz signer config is valid");
            (Signer::new(config, reqwest::Client::new(), never), base)
        })
        .collect()
    })
}

fn limits() -> UploadLimits {
    UploadLimits::from_vars(&vars::empty().vars()).expect("default upload limits")
}

/// A signed URL for an accepted path stays on the store and in the bucket,
/// and carries no byte a URL may not hold raw.
fn assert_signed(url: &str, base: &str, path: &str) {
    assert!(
        url.starts_with(base),
        "{url} is not under {base} (path {path:?})"
    );
    assert!(
        url.bytes().all(|b| b.is_ascii_graphic()),
        "raw bytes in {url:?}"
    );
}

/// `crates/attachments`: the body of `POST /attachments/upload-url`, the
/// file name in it, and the object path built from it. Input: `content type
/// byte, body`.
///
/// Accepted: the file name is plain (no `/`, `\`, `..`, control
/// characters) and the object path is `<account>/<message>/<object>/<name>`
/// with a name that has no `/`, is not `.` or `..` and contains no `..`, so
/// it passes the signers' path rules and both sign it under the bucket.
/// Refused: a 4xx.
pub fn attachments_upload(data: &[u8]) {
    let Some((&content_type, body)) = data.split_first() else {
        return;
    };
    let req = request("/attachments/upload-url", content_type, body);
    let upload = match edge_attachments::read_upload_request(&req, &limits()) {
        Ok(upload) => upload,
        Err(err) => return assert_client_error(&err, "upload"),
    };
    let name = &upload.file_name;
    assert!(
        !name.contains(['/', '\\']) && !name.contains(".."),
        "{name:?}"
    );
    assert!(!name.chars().any(char::is_control), "{name:?}");

    let account = "6a0b1c2d-0000-4000-8000-000000000001";
    let object = uuid::Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
    let path = edge_attachments::object_path(account, upload.message_id, object, name);
    let prefix = format!("{account}/{}/{object}/", upload.message_id);
    let last = path
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{path:?} left {prefix:?}"));
    assert!(!last.is_empty() && !last.contains('/'), "{path:?}");
    assert!(!last.contains("..") && last != ".", "{path:?}");
    sign::check_path(&path).unwrap_or_else(|e| panic!("{path:?}: {e:?}"));

    let access = Access::Upload {
        content_type: upload.content_type.clone(),
        content_length: upload.size,
    };
    for (signer, base) in signers() {
        let signed = ready(signer.sign(&path, &access, None, NOW as u64)).unwrap_or_else(|e| {
            panic!(
                "{:?} refused an accepted upload {path:?}: {e:?}",
                signer.name()
            )
        });
        assert_signed(&signed.url, base, &path);
    }
}

/// `crates/attachments`: the body of `POST /attachments/sign`, and object
/// paths as the signers take them. Input: `content type byte, body \0
/// path`.
///
/// Accepted ids are 1-100 distinct UUIDs (a 4xx otherwise). A path either
/// is refused with a 4xx, or has no empty, `.` or `..` segment and signs to
/// a URL under the bucket.
pub fn attachments_sign(data: &[u8]) {
    let Some((&content_type, rest)) = data.split_first() else {
        return;
    };
    let [body, path] = fields::<2>(rest);
    let req = request("/attachments/sign", content_type, body);
    match edge_attachments::read_download_request(&req) {
        Err(err) => assert_client_error(&err, "sign"),
        Ok(asked) => {
            assert!((1..=sign::MAX_BATCH).contains(&asked.ids.len()));
            for (i, id) in asked.ids.iter().enumerate() {
                assert!(!asked.ids[..i].contains(id), "id {id} twice");
            }
        }
    }

    let path = text(path);
    for (signer, base) in signers() {
        for access in [
            Access::Download,
            Access::Upload {
                content_type: "text/plain".into(),
                content_length: 1,
            },
        ] {
            match ready(signer.sign(&path, &access, Some(60), NOW as u64)) {
                Err(err) => assert_client_error(&err, "path"),
                Ok(signed) => {
                    assert!(
                        path.split('/')
                            .all(|s| !s.is_empty() && s != "." && s != ".."),
                        "{:?} signed {path:?}",
                        signer.name()
                    );
                    assert_signed(&signed.url, base, &path);
                }
            }
        }
    }
}
