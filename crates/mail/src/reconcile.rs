//! The reconciler: every mail left `reserved` or `unknown` past
//! `EMAIL_RECONCILE_AFTER_SECS` is settled, or handed to an operator.
//!
//! A run claims a batch of stale mails (`claim_stale_emails`, one run per
//! mail however many overlap), asks the provider about each
//! ([`crate::provider::Provider::lookup`]) and records the answer:
//!
//! | the provider says | the mail becomes |
//! |---|---|
//! | sent (Resend: the same request under the same key answers the original id; Postmark: its message search finds the send key) | `sent` (`finalize_email`) |
//! | certainly not sent (Resend refuses the same body again; Postmark has no message with the key) | `refunded`, once |
//! | nothing certain yet (a 5xx, a timeout, our key or quota) | `unknown`, asked again after the same age |
//! | past its window (Resend 23 h, Postmark 7 days), or the key was used for another body | `unknown`, held for an operator (`hold_email_for_operator`) |
//!
//! For Resend the question is the send itself: a mail whose first request
//! never reached Resend (the Worker died before calling it) is sent now,
//! late, as it was paid for; one that reached it is not sent again.
//!
//! Runs from send-email's Cron Trigger and `POST /emails/reconcile` (the
//! service key only); both are bounded by `EMAIL_RECONCILE_BATCH` mails.

use crate::message::Message;
use crate::provider::Found;
use crate::{provider_key, SendEmail};
use edge_core::{ConfigError, Error, Vars};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The reconciler's settings, read once.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileConfig {
    /// `EMAIL_RECONCILE_AFTER_SECS`: how old a `reserved` or `unknown` mail
    /// must be to be reconciled, and how long a claimed mail waits before
    /// it is asked about again. Default 900; at least `EMAIL_TIMEOUT_MS`
    /// plus a minute, so no send in flight is taken for a stuck one.
    pub after_secs: u32,
    /// `EMAIL_RECONCILE_BATCH`: mails per run, 1-500. Default 25: each is
    /// one provider call of at most `EMAIL_TIMEOUT_MS`, one after another.
    pub batch: u32,
}

impl ReconcileConfig {
    pub fn from_vars(vars: &Vars<'_>, timeout: std::time::Duration) -> Result<Self, ConfigError> {
        let after_secs = vars.parse_or("EMAIL_RECONCILE_AFTER_SECS", 900u32)?;
        if u64::from(after_secs) < timeout.as_secs() + 60 {
            return Err(ConfigError::new(
                "EMAIL_RECONCILE_AFTER_SECS",
                "must be at least EMAIL_TIMEOUT_MS plus 60 s, or sends still in flight would be reconciled",
            ));
        }
        let batch = vars.parse_or("EMAIL_RECONCILE_BATCH", 25u32)?;
        if !(1..=500).contains(&batch) {
            return Err(ConfigError::new(
                "EMAIL_RECONCILE_BATCH",
                "must be between 1 and 500",
            ));
        }
        Ok(Self { after_secs, batch })
    }
}

/// A mail as `claim_stale_emails` hands it out.
#[derive(Debug, Deserialize)]
struct Stale {
    mail_id: String,
    user_id: String,
    status: String,
    recipients: Vec<String>,
    subject: Option<String>,
    content: String,
    html: Option<String>,
    mail_type: String,
    template_id: Option<String>,
    idempotency_key: String,
    age_secs: i64,
}

impl Stale {
    /// The message as it was sent: what `reserve_email` logged is what the
    /// provider got (the text or a template's variables in `content`, the
    /// html beside it), so the request can be made again byte for byte.
    fn message(&self) -> Result<Message, String> {
        let template = match (self.mail_type.as_str(), &self.template_id) {
            ("template", Some(id)) => Some((
                id.clone(),
                serde_json::from_str::<Value>(&self.content)
                    .map_err(|e| format!("template variables unreadable: {e}"))?,
            )),
            ("custom", None) => None,
            (kind, _) => return Err(format!("a {kind} mail that cannot be rebuilt")),
        };
        let text = (template.is_none() && !self.content.is_empty()).then(|| self.content.clone());
        Ok(Message {
            to: self.recipients.clone(),
            subject: self.subject.clone(),
            html: self.html.clone(),
            text,
            template,
        })
    }
}

/// What one run did, for the log line and the operator's answer.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub claimed: usize,
    pub sent: usize,
    pub refunded: usize,
    /// Still unknown, asked again at a later run.
    pub unclear: usize,
    /// Handed to an operator.
    pub held: usize,
    /// Could not be recorded (PostgREST failed); claimed again later.
    pub failed: usize,
    pub mails: Vec<Settled>,
}

/// One mail's decision (no provider words: those go to the log only).
#[derive(Debug, Serialize)]
pub struct Settled {
    pub mail_id: String,
    pub outcome: &'static str,
}

impl SendEmail {
    /// One reconciler run: claims up to a batch of stale mails and settles
    /// each as the table in this module's docs says. An error only when
    /// the claim itself fails; a mail whose outcome cannot be recorded is
    /// counted `failed` and claimed again after the age.
    pub async fn reconcile(&self) -> Result<Summary, Error> {
        let claimed: Vec<Stale> = self
            .supabase
            .service()
            .execute(self.supabase.service().rpc(
                "claim_stale_emails",
                &json!({
                    "p_older_than_secs": self.reconcile.after_secs,
                    "p_limit": self.reconcile.batch,
                    "p_retry_after_secs": self.reconcile.after_secs,
                    "p_provider": self.provider.name(),
                }),
            ))
            .await?;
        let mut summary = Summary {
            claimed: claimed.len(),
            ..Summary::default()
        };
        for mail in &claimed {
            let (outcome, recorded) = self.settle(mail).await;
            match (outcome, &recorded) {
                (_, Err(_)) => summary.failed += 1,
                ("sent", _) => summary.sent += 1,
                ("refunded", _) => summary.refunded += 1,
                ("held", _) => summary.held += 1,
                _ => summary.unclear += 1,
            }
            summary.mails.push(Settled {
                mail_id: mail.mail_id.clone(),
                outcome: if recorded.is_ok() { outcome } else { "failed" },
            });
        }
        Ok(summary)
    }

    async fn settle(&self, mail: &Stale) -> (&'static str, Result<Value, Error>) {
        let found = match mail.message() {
            Ok(message) => {
                let key = provider_key(&mail.user_id, &mail.idempotency_key);
                self.provider.lookup(&message, &key, mail.age_secs).await
            }
            Err(why) => Found::Operator(why),
        };
        let finalize = |outcome: &str, id: Option<&str>, error: Option<&str>| {
            self.supabase.service().rpc(
                "finalize_email",
                &json!({
                    "p_mail_id": mail.mail_id,
                    "p_provider": self.provider.name(),
                    "p_outcome": outcome,
                    "p_provider_message_id": id,
                    "p_error": error.map(|e| format!("reconciler: {e}")),
                }),
            )
        };
        match found {
            Found::Sent(id) => (
                "sent",
                self.supabase
                    .service()
                    .execute(finalize("sent", Some(&id), None))
                    .await,
            ),
            Found::NotSent(why) => (
                "refunded",
                self.supabase
                    .service()
                    .execute(finalize("refunded", None, Some(&why)))
                    .await,
            ),
            // A reserved mail becomes unknown: whatever happens next, it is
            // no longer taken for one in flight. An unknown one stays so.
            Found::Unclear(why) if mail.status == "reserved" => (
                "unclear",
                self.supabase
                    .service()
                    .execute(finalize("unknown", None, Some(&why)))
                    .await,
            ),
            Found::Unclear(_) => ("unclear", Ok(Value::Null)),
            Found::Operator(why) => (
                "held",
                self.supabase
                    .service()
                    .execute(self.supabase.service().rpc(
                        "hold_email_for_operator",
                        &json!({
                            "p_mail_id": mail.mail_id,
                            "p_provider": self.provider.name(),
                            "p_reason": format!("reconciler: {why}"),
                        }),
                    ))
                    .await,
            ),
        }
    }
}

/// The JSON log line of a run (the Cron Trigger has no request to log):
/// whether it went well, and the line. Counts only; no provider words.
pub fn log_line(run: Result<Summary, Error>) -> (bool, String) {
    match run {
        Ok(summary) => (
            summary.failed == 0,
            json!({
                "function": crate::NAME, "event": "reconcile",
                "claimed": summary.claimed, "sent": summary.sent, "refunded": summary.refunded,
                "unclear": summary.unclear, "held": summary.held, "failed": summary.failed,
            })
            .to_string(),
        ),
        Err(err) => (
            false,
            json!({
                "function": crate::NAME, "event": "reconcile", "status": err.status(),
                "error": err.code(), "detail": err.log_detail(),
            })
            .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stale(mail_type: &str, template_id: Option<&str>, content: &str) -> Stale {
        Stale {
            mail_id: "m".into(),
            user_id: "u".into(),
            status: "reserved".into(),
            recipients: vec!["a@b.example".into()],
            subject: Some("Hi".into()),
            content: content.into(),
            html: Some("<p>Hi</p>".into()),
            mail_type: mail_type.into(),
            template_id: template_id.map(str::to_owned),
            idempotency_key: "k".into(),
            age_secs: 1000,
        }
    }

    #[test]
    fn a_logged_mail_rebuilds_the_request_that_was_priced_and_sent() {
        // What reserve_email logs from a Message comes back as that Message
        // (the same request hash), so the provider sees the same body.
        let custom = crate::message::Message {
            to: vec!["a@b.example".into()],
            subject: Some("Hi".into()),
            html: Some("<p>Hi</p>".into()),
            text: Some("Hello".into()),
            template: None,
        };
        let rebuilt = stale("custom", None, &custom.content())
            .message()
            .expect("custom");
        assert_eq!(rebuilt.request_hash(), custom.request_hash());

        let html_only = crate::message::Message {
            text: None,
            ..custom.clone()
        };
        let rebuilt = stale("custom", None, &html_only.content())
            .message()
            .expect("html only");
        assert_eq!(rebuilt, html_only);

        let template = crate::message::Message {
            to: vec!["a@b.example".into()],
            subject: None,
            html: None,
            text: None,
            template: Some(("welcome".into(), json!({"name": "Ada", "n": 2}))),
        };
        let mut row = stale("template", Some("welcome"), &template.content());
        row.subject = None;
        row.html = None;
        assert_eq!(row.message().expect("template"), template);

        assert!(stale("template", Some("w"), "{not json").message().is_err());
        assert!(stale("template", None, "{}").message().is_err());
    }

    #[test]
    fn the_age_must_outlast_a_send() {
        let timeout = std::time::Duration::from_secs(10);
        let vars = [("EMAIL_RECONCILE_AFTER_SECS", "30")];
        assert_eq!(
            ReconcileConfig::from_vars(&Vars(&vars), timeout)
                .unwrap_err()
                .name,
            "EMAIL_RECONCILE_AFTER_SECS"
        );
        let vars = [("EMAIL_RECONCILE_BATCH", "0")];
        assert_eq!(
            ReconcileConfig::from_vars(&Vars(&vars), timeout)
                .unwrap_err()
                .name,
            "EMAIL_RECONCILE_BATCH"
        );
        const NONE: [(&str, &str); 0] = [];
        let defaults = ReconcileConfig::from_vars(&Vars(&NONE), timeout).expect("defaults");
        assert_eq!((defaults.after_secs, defaults.batch), (900, 25));
    }
}
