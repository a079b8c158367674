//! Email providers behind one trait, [`EmailApi`]: Resend (the default)
//! and Postmark, chosen by `EMAIL_PROVIDER`.
//!
//! Each turns an [`Outgoing`] message into its own API call and sorts the
//! answer into sent (with the provider's message id), rejected (the
//! provider refused this message: a 4xx, the caller's fault) or failed (5xx,
//! rate limit, network error, timeout: ours or theirs, worth a retry).
//!
//! - Resend: <https://resend.com/docs/api-reference/emails/send-email>
//!   (supports `Idempotency-Key`, so a retried send is not sent twice)
//! - Postmark: <https://postmarkapp.com/developer/api/email-api>
//!   (no idempotency key; our own reservation is what prevents a resend)

use edge_core::{ConfigError, Secret, Sleep, Vars};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Resend,
    Postmark,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Resend => "resend",
            Kind::Postmark => "postmark",
        }
    }

    fn default_url(self) -> &'static str {
        match self {
            Kind::Resend => "https://api.resend.com",
            Kind::Postmark => "https://api.postmarkapp.com",
        }
    }
}

/// Email provider settings, read once.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// `EMAIL_PROVIDER`: `resend` (default) or `postmark`.
    pub kind: Kind,
    /// `EMAIL_API_KEY` (secret): Resend API key or Postmark server token.
    api_key: Secret,
    /// `EMAIL_API_URL`: the API's base URL; defaults to the provider's.
    pub url: String,
    /// `EMAIL_FROM`: the sender, e.g. `Acme <support@acme.example>`.
    pub from: String,
    /// `EMAIL_TIMEOUT_MS`: how long to wait for the provider (default 10000).
    pub timeout: Duration,
}

impl ProviderConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let kind = match vars.optional("EMAIL_PROVIDER").as_deref() {
            None | Some("resend") => Kind::Resend,
            Some("postmark") => Kind::Postmark,
            Some(_) => {
                return Err(ConfigError::new(
                    "EMAIL_PROVIDER",
                    "must be `resend` or `postmark`",
                ))
            }
        };
        // Checked now: it goes in a header, which the client would refuse later.
        let api_key = vars.header_secret("EMAIL_API_KEY")?;
        Ok(Self {
            kind,
            api_key,
            url: vars.url_or("EMAIL_API_URL", || Some(kind.default_url().to_owned()))?,
            from: vars.required("EMAIL_FROM")?,
            timeout: Duration::from_millis(vars.parse_or("EMAIL_TIMEOUT_MS", 10_000u64)?),
        })
    }
}

/// What to send: a validated message (a body, or a template).
pub type Outgoing = crate::message::Message;

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Accepted; the provider's message id.
    Accepted(String),
    /// The provider refused this message (a 4xx other than 401, 403 and
    /// 429, which are our configuration or its capacity): retrying the same
    /// message will not help. The provider's words, for the log.
    Rejected(String),
    /// The provider failed, timed out, or could not be reached.
    Failed(String),
}

/// What differs between providers: how a mail becomes their API call, and
/// where their answer keeps the message id. The rest (the timeout, sorting
/// answers into [`Sent`]) is shared in [`Provider`]. Adding a provider is
/// one more implementation and one more [`Kind`].
pub trait EmailApi {
    fn name(&self) -> &'static str;
    fn request(
        &self,
        http: &reqwest::Client,
        config: &ProviderConfig,
        mail: &Outgoing,
        idempotency_key: &str,
    ) -> reqwest::RequestBuilder;
    fn message_id<'a>(&self, answer: &'a Value) -> Option<&'a str>;
}

/// Resend: bearer API key, JSON, `Idempotency-Key` honoured.
pub struct Resend;

impl EmailApi for Resend {
    fn name(&self) -> &'static str {
        "resend"
    }

    fn request(
        &self,
        http: &reqwest::Client,
        config: &ProviderConfig,
        mail: &Outgoing,
        idempotency_key: &str,
    ) -> reqwest::RequestBuilder {
        let mut body = json!({
            "from": config.from,
            "to": mail.to,
            "subject": mail.subject,
        });
        if let Some(html) = &mail.html {
            body["html"] = json!(html);
        }
        if let Some(text) = &mail.text {
            body["text"] = json!(text);
        }
        if let Some((id, variables)) = &mail.template {
            body["template"] = json!({"id": id, "variables": variables});
        }
        http.post(format!("{}/emails", config.url))
            .bearer_auth(config.api_key.expose())
            .header("idempotency-key", idempotency_key)
            .json(&body)
    }

    fn message_id<'a>(&self, answer: &'a Value) -> Option<&'a str> {
        answer["id"].as_str()
    }
}

/// Postmark: server token header, its own field names, templates by alias;
/// no idempotency key (our reservation is what prevents a second send).
pub struct Postmark;

impl EmailApi for Postmark {
    fn name(&self) -> &'static str {
        "postmark"
    }

    fn request(
        &self,
        http: &reqwest::Client,
        config: &ProviderConfig,
        mail: &Outgoing,
        _idempotency_key: &str,
    ) -> reqwest::RequestBuilder {
        let mut body = json!({
            "From": config.from,
            "To": mail.to.join(","),
            "MessageStream": "outbound",
        });
        let path = match &mail.template {
            Some((alias, model)) => {
                body["TemplateAlias"] = json!(alias);
                body["TemplateModel"] = model.clone();
                "email/withTemplate"
            }
            None => {
                body["Subject"] = json!(mail.subject);
                if let Some(html) = &mail.html {
                    body["HtmlBody"] = json!(html);
                }
                if let Some(text) = &mail.text {
                    body["TextBody"] = json!(text);
                }
                "email"
            }
        };
        http.post(format!("{}/{path}", config.url))
            .header("x-postmark-server-token", config.api_key.expose())
            .header("accept", "application/json")
            .json(&body)
    }

    /// Postmark answers 200 with `ErrorCode` 0 on success.
    fn message_id<'a>(&self, answer: &'a Value) -> Option<&'a str> {
        answer["MessageID"]
            .as_str()
            .filter(|_| answer["ErrorCode"].as_i64() == Some(0))
    }
}

pub struct Provider {
    api: Box<dyn EmailApi>,
    config: ProviderConfig,
    http: reqwest::Client,
    sleep: Sleep,
}

impl Provider {
    pub fn new(config: ProviderConfig, http: reqwest::Client, sleep: Sleep) -> Self {
        let api: Box<dyn EmailApi> = match config.kind {
            Kind::Resend => Box::new(Resend),
            Kind::Postmark => Box::new(Postmark),
        };
        Self {
            api,
            config,
            http,
            sleep,
        }
    }

    pub fn name(&self) -> &'static str {
        self.api.name()
    }

    /// Sends `mail`. `idempotency_key` is passed on where the provider
    /// supports one (Resend), so our own retry cannot send twice.
    pub async fn send(&self, mail: &Outgoing, idempotency_key: &str) -> Sent {
        let request = self
            .api
            .request(&self.http, &self.config, mail, idempotency_key);
        let call = async {
            let response = request
                .send()
                .await
                .map_err(|e| format!("unreachable: {e}"))?;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            Ok::<_, String>((status, body))
        };
        let (status, body) = match edge_core::within(self.sleep, self.config.timeout, call).await {
            Some(Ok(answer)) => answer,
            Some(Err(e)) => return Sent::Failed(e),
            None => return Sent::Failed(format!("no answer within {:?}", self.config.timeout)),
        };
        self.judge(status, &body)
    }

    fn judge(&self, status: u16, body: &Value) -> Sent {
        match (status, self.api.message_id(body)) {
            (200..=299, Some(id)) => Sent::Accepted(id.to_owned()),
            (200..=299, None) => Sent::Failed(format!("{status} without a message id: {body}")),
            // 401/403: our API key or sender is wrong, not the caller's mail.
            (401 | 403 | 429, _) | (500.., _) => Sent::Failed(format!("{status}: {body}")),
            (400..=499, _) => Sent::Rejected(format!("{status}: {body}")),
            _ => Sent::Failed(format!("unexpected {status}: {body}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        Box::pin(std::future::pending())
    }

    fn provider(kind: &str) -> Provider {
        let vars = [
            ("EMAIL_PROVIDER", kind),
            ("EMAIL_API_KEY", "key"),
            ("EMAIL_FROM", "Acme <support@acme.example>"),
        ];
        Provider::new(
            ProviderConfig::from_vars(&Vars(&vars)).expect("config"),
            reqwest::Client::new(),
            never,
        )
    }

    #[test]
    fn answers_are_sorted_into_sent_rejected_and_failed() {
        let resend = provider("resend");
        let cases = [
            (200, json!({"id": "re_1"}), Sent::Accepted("re_1".into())),
            (
                422,
                json!({"name": "validation_error"}),
                Sent::Rejected(String::new()),
            ),
            (403, json!({}), Sent::Failed(String::new())),
            (401, json!({}), Sent::Failed(String::new())),
            (429, json!({}), Sent::Failed(String::new())),
            (500, json!({}), Sent::Failed(String::new())),
            (200, json!({}), Sent::Failed(String::new())),
        ];
        for (status, body, expected) in cases {
            let got = resend.judge(status, &body);
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&expected),
                "{status} {body}"
            );
        }
        let postmark = provider("postmark");
        assert_eq!(
            postmark.judge(200, &json!({"MessageID": "pm-1", "ErrorCode": 0})),
            Sent::Accepted("pm-1".into())
        );
        assert!(matches!(
            postmark.judge(422, &json!({"ErrorCode": 300})),
            Sent::Rejected(_)
        ));
    }

    #[test]
    fn config_defaults_and_errors() {
        let p = provider("resend");
        assert_eq!(p.config.url, "https://api.resend.com");
        assert_eq!(p.config.timeout, Duration::from_secs(10));
        assert!(!format!("{:?}", p.config).contains("\"key\""));
        let vars = [
            ("EMAIL_PROVIDER", "mailgun"),
            ("EMAIL_API_KEY", "k"),
            ("EMAIL_FROM", "a@b.example"),
        ];
        assert_eq!(
            ProviderConfig::from_vars(&Vars(&vars)).unwrap_err().name,
            "EMAIL_PROVIDER"
        );
    }

    #[tokio::test]
    async fn a_provider_that_does_not_answer_in_time_has_failed() {
        fn instant(_: Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
            Box::pin(std::future::ready(()))
        }
        // A listener that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let _hold = tokio::spawn(async move {
            let _conn = listener.accept().await;
            std::future::pending::<()>().await;
        });
        let vars = [
            ("EMAIL_API_KEY", "k"),
            ("EMAIL_FROM", "a@b.example"),
            ("EMAIL_API_URL", url.as_str()),
        ];
        let provider = Provider::new(
            ProviderConfig::from_vars(&Vars(&vars)).expect("config"),
            reqwest::Client::new(),
            instant,
        );
        let mail = Outgoing {
            to: vec!["x@y.example".into()],
            subject: "s".into(),
            html: None,
            text: Some("t".into()),
            template: None,
        };
        assert!(matches!(provider.send(&mail, "k").await, Sent::Failed(_)));
    }
}
