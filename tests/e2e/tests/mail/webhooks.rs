//! The providers' delivery webhooks through the real wasm: Resend's signed
//! as Svix signs them, Postmark's behind basic auth; each event recorded
//! once and the mail's delivery status visible to its sender under RLS.

use super::{balance, mail, mail_by_subject, send, send_to, sign_up, unique, EMAILS, POSTMARK};
use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use edge_e2e::{ensure_eq, Reply, World};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// The webhook routes in openapi.yaml.
const RESEND_ROUTE: &str = "/send-email/webhooks/email/resend";
const POSTMARK_ROUTE: &str = "/send-email/webhooks/email/postmark";

/// Resend's delivery of `event` as Svix sends it, signed with `secret`
/// (`whsec_<base64>`) at `timestamp`, under the header prefix given.
async fn resend_event(
    world: &World,
    id: &str,
    event: &Value,
    secret: &str,
    timestamp: i64,
    prefix: &str,
) -> anyhow::Result<Reply> {
    let body = event.to_string();
    let key = STANDARD.decode(secret.trim_start_matches("whsec_"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    Reply::read(
        world
            .http
            .post(format!(
                "{}/webhooks/email/resend",
                world.function("send-email")
            ))
            .header("content-type", "application/json")
            .header(format!("{prefix}-id"), id)
            .header(format!("{prefix}-timestamp"), timestamp.to_string())
            .header(format!("{prefix}-signature"), signature)
            .body(body)
            .send()
            .await?,
    )
    .await
}

async fn postmark_event(world: &World, auth: (&str, &str), event: &Value) -> anyhow::Result<Reply> {
    Reply::read(
        world
            .http
            .post(format!(
                "{}/webhooks/email/postmark",
                world.function(POSTMARK)
            ))
            .basic_auth(auth.0, Some(auth.1))
            .json(event)
            .send()
            .await?,
    )
    .await
}

/// The mail's provider message id and delivery status, as postgres sees it.
async fn delivery(world: &World, mail_id: &str) -> anyhow::Result<(String, String, String, i64)> {
    let out = world
        .stack
        .psql(&format!(
            "select provider_message_id, coalesce(delivery_status, '-'), coalesce(delivery_reason, '-'), \
             (select count(*) from public.email_events e where e.mail_id = m.id) \
             from public.user_mails m where id = '{mail_id}'"
        ))
        .await?;
    let parts: Vec<&str> = out.trim().split('|').collect();
    let [id, status, reason, events] = parts.as_slice() else {
        anyhow::bail!("delivery of {mail_id}: {out:?}");
    };
    Ok((
        (*id).to_owned(),
        (*status).to_owned(),
        (*reason).to_owned(),
        events.parse()?,
    ))
}

/// What `token`'s user reads of the mail through PostgREST, under RLS.
async fn as_user(world: &World, token: &str, path: &str) -> anyhow::Result<Value> {
    Ok(world
        .http
        .get(format!("{}/{path}", world.stack.postgrest_url()))
        .header("apikey", world.stack.anon_key())
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?)
}

pub async fn deliveries_bounces_and_complaints_reach_the_mail_once(
    world: &World,
) -> anyhow::Result<()> {
    // Regression: nothing heard what became of a mail after the provider
    // accepted it. Fails before: both routes are 404.
    let secret = edge_stack::RESEND_WEBHOOK_SECRET;
    let now = chrono::Utc::now().timestamp();
    let (user, token) = sign_up(world).await?;
    let (_, outsider) = sign_up(world).await?;
    // Addresses of this case's own: a bounce suppresses its address for
    // every sender, and the other cases send to ada@example.com.
    let bouncing = format!("bounce-{}@example.com", uuid::Uuid::new_v4().simple());
    let complaining = format!("complain-{}@example.com", uuid::Uuid::new_v4().simple());
    let subject = unique("Delivered");
    let mut first = mail(&subject);
    first["to"] = json!(bouncing);
    send(world, &token, &first, None)
        .await?
        .expect(201)
        .context("sent")?;
    let (mail_id, _, _) = mail_by_subject(world, &subject).await?;
    let (message_id, _, _, _) = delivery(world, &mail_id).await?;
    let (paid, _) = balance(world, &user).await?;

    let delivered = json!({"type": "email.delivered", "created_at": "2026-12-01T12:00:01.000Z",
        "data": {"email_id": message_id, "to": [bouncing], "subject": subject,
                 "created_at": "2026-12-01T12:00:00.000Z", "from": "support@acme.example"}});
    let event_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    for (what, prefix) in [
        ("first delivery", "svix"),
        ("redelivery, the spec's headers", "webhook"),
    ] {
        let reply = resend_event(world, &event_id, &delivered, secret, now, prefix).await?;
        reply
            .expect(200)
            .context(what)?
            .documented(&world.openapi, "POST", RESEND_ROUTE)?;
        ensure_eq!(
            reply.json()?["duplicate"],
            json!(what != "first delivery"),
            "{what}"
        );
    }
    let (_, status, _, events) = delivery(world, &mail_id).await?;
    ensure_eq!(
        (status.as_str(), events),
        ("delivered", 1),
        "delivered, recorded once"
    );

    // Refused: another secret, a stale or future timestamp, a tampered body.
    let other = format!(
        "whsec_{}",
        STANDARD.encode("another-signing-key-of-32-bytes!")
    );
    let bounced = json!({"type": "email.bounced", "created_at": "2026-12-01T12:00:02.000Z",
        "data": {"email_id": message_id, "to": [bouncing],
                 "bounce": {"message": "The recipient's mailbox does not exist.", "type": "Permanent", "subType": "General"}}});
    for (what, key, at) in [
        ("other secret", other.as_str(), now),
        ("stale", secret, now - 600),
        ("future", secret, now + 600),
    ] {
        let reply = resend_event(world, "msg_bad", &bounced, key, at, "svix").await?;
        reply
            .expect(400)
            .context(what)?
            .documented(&world.openapi, "POST", RESEND_ROUTE)?;
    }
    ensure_eq!(
        delivery(world, &mail_id).await?.1,
        "delivered",
        "nothing refused was recorded"
    );

    // A permanent bounce: the worst status wins; no refund (the policy).
    let bounce_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    resend_event(world, &bounce_id, &bounced, secret, now, "svix")
        .await?
        .expect(200)
        .context("bounce")?;
    let (_, status, reason, events) = delivery(world, &mail_id).await?;
    ensure_eq!((status.as_str(), events), ("bounced", 2), "bounced");
    ensure_eq!(
        reason.contains("does not exist"),
        true,
        "with its reason: {reason}"
    );
    ensure_eq!(
        balance(world, &user).await?.0,
        paid,
        "a bounce refunds nothing"
    );
    // A late delivery event does not undo it.
    let late = format!("msg_{}", uuid::Uuid::new_v4().simple());
    resend_event(world, &late, &delivered, secret, now, "svix")
        .await?
        .expect(200)
        .context("late")?;
    ensure_eq!(
        delivery(world, &mail_id).await?.1,
        "bounced",
        "the bounce stands"
    );
    // Opens and the like are received and dropped.
    let opened = json!({"type": "email.opened", "created_at": "2026-12-01T12:00:03.000Z", "data": {"email_id": message_id}});
    let reply = resend_event(world, "msg_opened", &opened, secret, now, "svix").await?;
    reply.expect(200).context("untracked type")?;
    ensure_eq!(reply.json()?["ignored"], json!(true), "untracked type");

    // The sender sees it under RLS; nobody else does.
    let path = format!("user_mails?id=eq.{mail_id}&select=delivery_status,delivery_reason");
    ensure_eq!(
        as_user(world, &token, &path).await?[0]["delivery_status"],
        json!("bounced"),
        "owner"
    );
    ensure_eq!(
        as_user(world, &outsider, &path).await?,
        json!([]),
        "outsider"
    );
    let events = format!("email_events?mail_id=eq.{mail_id}&select=type");
    ensure_eq!(
        as_user(world, &token, &events)
            .await?
            .as_array()
            .map(Vec::len),
        Some(3),
        "owner's events"
    );
    ensure_eq!(
        as_user(world, &outsider, &events).await?,
        json!([]),
        "not the outsider's"
    );

    // Postmark: basic auth, its bounce and complaint payloads.
    let subject = unique("Postmark");
    let body = json!({"to": complaining, "subject": subject, "text": "Hi"});
    send_to(world, POSTMARK, &token, &body, None)
        .await?
        .expect(201)
        .context("sent via Postmark")?;
    let (mail_id, _, _) = mail_by_subject(world, &subject).await?;
    let (message_id, _, _, _) = delivery(world, &mail_id).await?;
    let auth = (
        edge_stack::POSTMARK_WEBHOOK_USER,
        edge_stack::POSTMARK_WEBHOOK_PASSWORD,
    );
    let delivery_event = json!({"RecordType": "Delivery", "ServerID": 23, "MessageID": message_id,
        "Recipient": complaining, "Tag": "", "DeliveredAt": "2026-12-01T12:00:00.0000000-05:00",
        "Details": "Test delivery webhook details", "MessageStream": "outbound", "Metadata": {}});
    let reply = postmark_event(world, (auth.0, "wrong"), &delivery_event).await?;
    reply.expect(401).context("wrong credentials")?.documented(
        &world.openapi,
        "POST",
        POSTMARK_ROUTE,
    )?;
    for duplicate in [false, true] {
        let reply = postmark_event(world, auth, &delivery_event).await?;
        reply
            .expect(200)?
            .documented(&world.openapi, "POST", POSTMARK_ROUTE)?;
        ensure_eq!(
            reply.json()?["duplicate"],
            json!(duplicate),
            "delivery, then its redelivery"
        );
    }
    let complaint = json!({"RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint", "TypeCode": 512,
        "Name": "Spam complaint", "MessageID": message_id, "Email": complaining,
        "BouncedAt": "2026-12-01T12:05:00.0000000-05:00", "Description": "The subscriber explicitly marked this message as spam.",
        "Inactive": true, "CanActivate": false, "MessageStream": "outbound"});
    postmark_event(world, auth, &complaint)
        .await?
        .expect(200)
        .context("complaint")?;
    let (_, status, _, events) = delivery(world, &mail_id).await?;
    ensure_eq!(
        (status.as_str(), events),
        ("complained", 2),
        "complained, each event once"
    );

    // Suppressed: the bounced and the complaining address are refused
    // before anything is charged or sent, each a field error on its index.
    let (before, _) = balance(world, &user).await?;
    let again = unique("Again");
    let body = json!({"to": ["ok@example.com", bouncing.to_uppercase(), complaining], "subject": again, "text": "Hi"});
    let reply = send(world, &token, &body, None).await?;
    reply
        .expect(422)?
        .documented(&world.openapi, "POST", EMAILS)?;
    ensure_eq!(
        reply.fields()?,
        ["to[1]", "to[2]"],
        "each suppressed address named"
    );
    ensure_eq!(balance(world, &user).await?.0, before, "nothing charged");
    ensure_eq!(
        super::provider_requests(world, &again).len(),
        0,
        "nothing sent"
    );
    Ok(())
}
