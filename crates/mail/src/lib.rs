//! Email send: a signed-in user sends an email through the product, paying
//! credits, exactly once.
//!
//! `POST /emails`, in order:
//!
//! 1. verify the caller's JWT (a real user; anonymous sign-ins refused);
//! 2. validate the body (one 422 listing every failing field);
//! 3. `reserve_email` **as the user**: the function acts on `auth.uid()`
//!    only and prices what is sent (text or template variables, plus html)
//!    itself, so a caller can neither charge someone else nor pick the
//!    price; it enforces the operator's sending policy (templates only
//!    unless raw content is allowed, daily limits), locks the profile,
//!    deducts the credits and logs the mail as `reserved` in one
//!    transaction (402 when short), or returns the earlier mail for a
//!    repeated `Idempotency-Key`;
//! 4. send through the provider (Resend or Postmark), passing the key on;
//! 5. `finalize_email` **as the service** (users cannot call it, so nobody
//!    can mark their own sent mail failed to get a refund): `sent`;
//!    `refunded`, with the credits returned exactly once, only when the
//!    provider certainly did not send it; otherwise `unknown`, still
//!    charged, for a reconciler to settle.
//!
//! Clients read their balance, mails and credit ledger through PostgREST
//! directly, under RLS; there is no balance route.

pub mod message;
pub mod provider;
pub mod reconcile;
pub mod webhooks;

use edge_auth::{JwtConfig, Policy, Verifier};
use edge_core::{
    Error, FieldError, Function, Host, HttpConfig, Method, Request, Response, Service, Vars,
};
use edge_db::Supabase;
use message::{validate, RawMessage};
use provider::{Provider, ProviderConfig, Sent};
use reconcile::ReconcileConfig;
use serde::{Deserialize, Serialize};
use serde_json::json;
use webhooks::WebhookConfig;

pub const NAME: &str = "send-email";

/// `MAX_BODY_BYTES` unless configured: large enough for html and text both
/// at their 100,000-character limits in ASCII or two-byte scripts, so a
/// mail can reach the price table's size steps (100 KiB included, then 1
/// credit per recipient per started 100 KiB), which 64 KiB never allowed.
pub const DEFAULT_MAX_BODY_BYTES: usize = 512 * 1024;

pub struct SendEmail {
    http: HttpConfig,
    supabase: Supabase,
    verifier: Verifier,
    provider: Provider,
    reconcile: ReconcileConfig,
    webhooks: WebhookConfig,
    /// The only credential `POST /emails/reconcile` takes.
    now: fn() -> i64,
}

impl Function for SendEmail {
    /// Reads the config once; see the README's table of variables. `sleep`
    /// bounds the PostgREST and provider calls; `now` is the clock for token
    /// expiry.
    fn from_vars(vars: &Vars<'_>, host: Host) -> Result<Self, Error> {
        let Host { sleep, now } = host;
        let supabase = Supabase::from_vars(vars, sleep)?;
        let http = reqwest::Client::new();
        let provider = ProviderConfig::from_vars(vars)?;
        Ok(Self {
            http: HttpConfig::from_vars_with_body_limit(vars, DEFAULT_MAX_BODY_BYTES)?,
            supabase,
            verifier: Verifier::new(JwtConfig::from_vars(vars)?, http.clone(), sleep),
            reconcile: ReconcileConfig::from_vars(vars, provider.timeout)?,
            webhooks: WebhookConfig::from_vars(vars)?,
            provider: Provider::new(provider, http, sleep),
            now,
        })
    }
}

impl SendEmail {
    async fn send(&self, req: &Request) -> Result<Response, Error> {
        let user = self
            .verifier
            .authenticate(req, (self.now)(), Policy::User)
            .await?;
        let message = validate(req.json::<RawMessage>()?)?;
        // Without a key, a fresh one: a client that retries without a key
        // may send twice, as documented.
        let key = req
            .idempotency_key()?
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let db = self.supabase.as_user(&user);

        let reserved: Mail = db
            .execute(db.rpc(
                "reserve_email",
                &json!({
                    "p_recipients": message.to,
                    "p_subject": message.subject,
                    "p_content": message.content(),
                    "p_html": message.html,
                    "p_mail_type": message.mail_type(),
                    "p_template_id": message.template.as_ref().map(|(id, _)| id),
                    "p_idempotency_key": key,
                    "p_request_hash": message.request_hash(),
                }),
            ))
            .await
            .map_err(recipient_errors)?;
        if reserved.replayed {
            return replay(reserved);
        }

        // The provider's key is per user, so two users' keys never collide;
        // Resend takes at most 256 characters, so a long one is hashed.
        let provider_key = provider_key(&user.user_id().to_string(), &key);
        let outcome = self.provider.send(&message, &provider_key).await;
        let (recorded, message_id, error) = match &outcome {
            Sent::Accepted(id) => ("sent", Some(id.as_str()), None),
            Sent::Rejected(why) | Sent::Refused(why) => ("refunded", None, Some(why.as_str())),
            Sent::Unknown(why) => ("unknown", None, Some(why.as_str())),
        };
        let finalized: Result<Mail, Error> = self
            .supabase
            .service()
            .execute(self.supabase.service().rpc(
                "finalize_email",
                &json!({
                    "p_mail_id": reserved.mail_id,
                    "p_provider": self.provider.name(),
                    "p_outcome": recorded,
                    "p_provider_message_id": message_id,
                    "p_error": error,
                }),
            ))
            .await;

        match (outcome, finalized) {
            (Sent::Accepted(_), Ok(mail)) => Response::json(201, &mail.receipt()),
            // Sent, but not recorded as such (PostgREST down or silent): the
            // mail was delivered and paid for; it stays `reserved` until the
            // reconciler settles it. Never refunded on a guess. A 503 like
            // every other database outage, saying what happened.
            (Sent::Accepted(_), Err(err)) => Err(Error::unavailable_after(
                "The email was sent, but recording it failed; it shows as reserved until it is confirmed. \
                 Retry with the same Idempotency-Key later to see the result; a new key would send it again.",
                format!("finalize after send failed: {err}; mail {} stays reserved", reserved.mail_id),
            )),
            (Sent::Rejected(why), Ok(_)) => Err(Error::Rejected {
                detail: "The email provider refused this message (check the addresses). Your credits were refunded."
                    .into(),
                reason: why,
            }),
            (Sent::Refused(why), Ok(_)) => Err(Error::BadGateway {
                detail: "The email provider did not send this email (its limits, or our configuration). \
                         Your credits were refunded; send again later with a new Idempotency-Key."
                    .into(),
                reason: why,
            }),
            // Whether or not the outcome could be recorded (unrecorded, the
            // mail stays reserved), it is for a reconciler to settle: the
            // caller must neither resend under a new key nor expect a refund.
            (Sent::Unknown(why), finalized) => Err(Error::BadGateway {
                detail: "The email provider did not confirm whether it sent this email; it may have. \
                         The outcome is being confirmed: your credits stay reserved until then and are refunded \
                         if it was not sent. Retry with the same Idempotency-Key later to see the result; \
                         a new key could send it twice."
                    .into(),
                reason: match finalized {
                    Ok(_) => why,
                    Err(err) => format!(
                        "{why}; recording the unknown outcome failed ({err}); mail {} stays reserved",
                        reserved.mail_id
                    ),
                },
            }),
            // The provider certainly did not send it, but the refund could not
            // be recorded (PostgREST down or silent): the reservation stays
            // and the reconciler refunds it. A 503 that says so, never a 500.
            (Sent::Rejected(why) | Sent::Refused(why), Err(err)) => Err(Error::unavailable_after(
                "The email was not sent, but its refund could not be recorded yet; your credits stay \
                 reserved until it is, then they are refunded. Retry with the same Idempotency-Key later \
                 to see the result.",
                format!(
                    "send failed ({why}) and the refund could not be recorded ({err}); mail {} stays reserved",
                    reserved.mail_id
                ),
            )),
        }
    }
}

impl SendEmail {
    /// `POST /emails/reconcile`: an operator starts a reconciler run (the
    /// Cron Trigger runs the same). Only the service key is accepted, as
    /// `Authorization: Bearer`, compared in constant time; anything else is
    /// the one 401 every auth failure is.
    async fn reconcile_now(&self, req: &Request) -> Result<Response, Error> {
        let presented = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !self.supabase.service_key().matches(presented) {
            return Err(Error::unauthorized(
                "reconcile: the bearer is not the service key",
            ));
        }
        Response::json(200, &self.reconcile().await?)
    }
}

/// A mail as `reserve_email` and `finalize_email` answer it.
#[derive(Debug, Deserialize)]
struct Mail {
    mail_id: String,
    status: String,
    credits_used: i64,
    credits_remaining: i64,
    #[serde(default)]
    replayed: bool,
}

#[derive(Serialize)]
struct Receipt<'a> {
    mail_id: &'a str,
    status: &'a str,
    credits_used: i64,
    credits_remaining: i64,
}

impl Mail {
    fn receipt(&self) -> Receipt<'_> {
        Receipt {
            mail_id: &self.mail_id,
            status: &self.status,
            credits_used: self.credits_used,
            credits_remaining: self.credits_remaining,
        }
    }
}

/// A repeated `Idempotency-Key`: the first attempt's result, never a second
/// charge or send. Still `reserved` means the first attempt is in flight;
/// `unknown`, that its outcome is being confirmed.
fn replay(mail: Mail) -> Result<Response, Error> {
    match mail.status.as_str() {
        "reserved" => Err(Error::conflict(
            "An email with this Idempotency-Key is still being sent. Retry shortly to get its result.",
        )),
        "unknown" => Err(Error::conflict(
            "Whether the email with this Idempotency-Key was sent is still being confirmed. \
             Retry later with the same key to get its result.",
        )),
        // The first attempt failed and was refunded; replaying that as a
        // success would hide that nothing was sent.
        "refunded" => Err(Error::conflict(
            "An email with this Idempotency-Key failed and was refunded. Send again with a new Idempotency-Key.",
        )),
        _ => Ok(Response::json(200, &mail.receipt())?.with_header("idempotent-replayed", "true")),
    }
}

/// `reserve_email`'s refusal of suppressed recipients, `http_422:
/// to[<i>]: <why>; to[<j>]: ...`, as the field errors it names, so a form
/// can show each next to its address; any other error as it is.
fn recipient_errors(err: Error) -> Error {
    let Error::Client {
        status: 422,
        detail,
    } = &err
    else {
        return err;
    };
    let fields: Option<Vec<FieldError>> = detail
        .split("; ")
        .map(|part| {
            let (field, message) = part.split_once(": ")?;
            let index = field.strip_prefix("to[")?.strip_suffix(']')?;
            index.parse::<usize>().ok()?;
            Some(FieldError::new(field, message))
        })
        .collect();
    match fields {
        Some(errors) if !errors.is_empty() => Error::Validation { errors },
        _ => err,
    }
}

/// `<user>:<client key>`, hashed when longer than Resend's 256 characters.
pub(crate) fn provider_key(user_id: &str, key: &str) -> String {
    let combined = format!("{user_id}:{key}");
    if combined.len() <= 256 {
        return combined;
    }
    format!("{user_id}:sha256:{}", edge_core::sha256_hex(key))
}

impl Service for SendEmail {
    const NAME: &'static str = NAME;
    fn http(&self) -> &HttpConfig {
        &self.http
    }
    async fn probe(&self) -> Result<(), Error> {
        self.supabase.probe().await
    }
    async fn handle(&self, req: Request) -> Result<Response, Error> {
        for (route, provider) in [
            ("/webhooks/email/resend", "resend"),
            ("/webhooks/email/postmark", "postmark"),
        ] {
            if req.route_is(route) {
                return match (&req.method, provider) {
                    (Method::Post, "resend") => self.resend_webhook(&req).await,
                    (Method::Post, _) => self.postmark_webhook(&req).await,
                    _ => Err(Error::MethodNotAllowed {
                        allow: vec![Method::Post],
                    }),
                };
            }
        }
        if req.route_is("/emails/reconcile") {
            return match req.method {
                Method::Post => self.reconcile_now(&req).await,
                _ => Err(Error::MethodNotAllowed {
                    allow: vec![Method::Post],
                }),
            };
        }
        if req.route_is("/emails") {
            return match req.method {
                Method::Post => self.send(&req).await,
                _ => Err(Error::MethodNotAllowed {
                    allow: vec![Method::Post],
                }),
            };
        }
        Err(Error::NotFound)
    }
}

#[cfg(test)]
mod tests {
    //! The branches decided before any I/O, with PostgREST and the provider
    //! pointed at a closed port (reaching either would be a 503). The rest
    //! runs end to end against the real stack in `tests/e2e`.
    use super::*;
    use edge_testing::clock::{never, wall_now as now};
    use edge_testing::tokens::{mint, user_claims, user_token};
    use edge_testing::{DemoUser, DEMO_JWT_SECRET};

    fn service() -> SendEmail {
        // The service key is short, so the reconciler test's near misses are.
        edge_testing::vars::supabase("http://127.0.0.1:9")
            .set("SUPABASE_SERVICE_ROLE_KEY", "service")
            .demo_jwt_secret()
            .set("EMAIL_API_KEY", "key")
            .set("EMAIL_API_URL", "http://127.0.0.1:9")
            .set("EMAIL_FROM", "Acme <support@acme.example>")
            .build(Host { sleep: never, now })
            .expect("config")
    }

    async fn post(token: Option<&str>, body: &str) -> Response {
        let mut req = Request::new(Method::Post, "/emails")
            .with_header("content-type", "application/json")
            .with_body(body);
        if let Some(token) = token {
            req = req.with_header("authorization", &format!("Bearer {token}"));
        }
        edge_core::serve(&service(), req, || 0.0).await.0
    }

    const VALID: &str = r#"{"to":"ada@example.com","subject":"Hi","text":"Hello"}"#;

    #[tokio::test]
    async fn callers_without_a_real_user_token_are_401() {
        let anonymous = {
            let mut claims = user_claims(DemoUser::Member, chrono::Utc::now());
            claims["is_anonymous"] = serde_json::json!(true);
            mint(DEMO_JWT_SECRET, &claims).expect("token")
        };
        let forged = user_token(
            "another-secret-that-is-at-least-32-bytes!",
            DemoUser::Member,
        );
        for token in [
            None,
            Some(anonymous.as_str()),
            Some(forged.as_str()),
            Some("garbage"),
        ] {
            let r = post(token, VALID).await;
            assert_eq!(r.status, 401, "{token:?}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
    }

    #[tokio::test]
    async fn invalid_messages_are_422_before_any_credit_is_touched() {
        let token = user_token(DEMO_JWT_SECRET, DemoUser::Member);
        let r = post(Some(&token), r#"{"to":["x"],"subject":""}"#).await;
        assert_eq!(r.status, 422);
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(body["errors"].as_array().map(Vec::len), Some(3), "{body}");
        assert_eq!(post(Some(&token), "{").await.status, 400);
    }

    #[tokio::test]
    async fn a_valid_send_with_postgrest_down_is_503_and_sends_nothing() {
        let token = user_token(DEMO_JWT_SECRET, DemoUser::Member);
        let r = post(Some(&token), VALID).await;
        assert_eq!(r.status, 503);
        assert!(r.header("retry-after").is_some());
    }

    #[test]
    fn suppressed_recipients_are_field_errors_on_their_index() {
        let refused = |detail: &str| Error::Client {
            status: 422,
            detail: detail.into(),
        };
        let got = recipient_errors(refused(
            "to[0]: this address is suppressed (it hard-bounced), so no mail is sent to it; \
             to[2]: this address is suppressed (it marked our mail as spam), so no mail is sent to it",
        ));
        let Error::Validation { errors } = got else {
            panic!("{got:?}");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["to[0]", "to[2]"]);
        assert!(errors[1].message.contains("spam"));
        // Other 422s from reserve_email stay as they are.
        for detail in [
            "Idempotency-Key was already used with a different email",
            "to[x]: no",
        ] {
            assert!(matches!(
                recipient_errors(refused(detail)),
                Error::Client { status: 422, .. }
            ));
        }
    }

    #[test]
    fn provider_keys_are_per_user_and_fit_resends_limit() {
        let user = "22222222-2222-4222-8222-222222222222";
        assert_eq!(provider_key(user, "k-1"), format!("{user}:k-1"));
        let long = provider_key(user, &"k".repeat(255));
        assert!(long.len() <= 256, "{}", long.len());
        assert_ne!(long, provider_key(user, &"k".repeat(254)));
    }

    #[tokio::test]
    async fn only_the_service_key_starts_a_reconciler_run() {
        // A user token, another key, none: the one 401, before any I/O.
        let user = user_token(DEMO_JWT_SECRET, DemoUser::Member);
        for bearer in [None, Some(user.as_str()), Some("servic"), Some("service ")] {
            let mut req = Request::new(Method::Post, "/emails/reconcile");
            if let Some(bearer) = bearer {
                req = req.with_header("authorization", &format!("Bearer {bearer}"));
            }
            let r = edge_core::serve(&service(), req, || 0.0).await.0;
            assert_eq!(r.status, 401, "{bearer:?}");
        }
        // The key: the run starts, and PostgREST (a closed port) is a 503.
        let req = Request::new(Method::Post, "/emails/reconcile")
            .with_header("authorization", "Bearer service");
        assert_eq!(
            edge_core::serve(&service(), req, || 0.0).await.0.status,
            503
        );
        let req = Request::new(Method::Get, "/emails/reconcile");
        assert_eq!(
            edge_core::serve(&service(), req, || 0.0).await.0.status,
            405
        );
    }

    #[tokio::test]
    async fn only_post_is_allowed() {
        let r = edge_core::serve(&service(), Request::new(Method::Get, "/emails"), || 0.0)
            .await
            .0;
        assert_eq!(r.status, 405);
    }
}
