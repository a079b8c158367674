//! Deliveries that are not what the provider signed: every way a
//! signature can be wrong is a 400 problem+json, and nothing is written.

use super::*;

pub async fn bad_signatures_are_400_and_write_nothing(world: &World) -> anyhow::Result<()> {
    let event_id = unique("evt_sig");
    let body =
        json!({"id": event_id, "object": "event", "type": "ping", "created": now()}).to_string();
    // A minute past the 300 s tolerance either way: a second ticking over
    // between signing here and checking in the worker must not let one in.
    let stale = now() - 360;
    let future = now() + 360;
    let stripe = Provider::Stripe;
    let sign = |provider, secret: &str, at, body: &str| {
        signature::sign(provider, secret, at, body.as_bytes())
    };
    let cases: Vec<(&str, Provider, String, Option<String>)> = vec![
        ("stripe: no header", stripe, body.clone(), None),
        (
            "stripe: wrong secret",
            stripe,
            body.clone(),
            Some(sign(stripe, "whsec_wrong", now(), &body)),
        ),
        (
            "stripe: tampered body",
            stripe,
            body.replace("ping", "pong"),
            Some(sign(stripe, &secret(stripe), now(), &body)),
        ),
        (
            "stripe: stale timestamp",
            stripe,
            body.clone(),
            Some(sign(stripe, &secret(stripe), stale, &body)),
        ),
        (
            "stripe: future timestamp",
            stripe,
            body.clone(),
            Some(sign(stripe, &secret(stripe), future, &body)),
        ),
        (
            "stripe: malformed",
            stripe,
            body.clone(),
            Some("t=abc,v1=xyz".to_owned()),
        ),
        (
            "lemon-squeezy: wrong secret",
            Provider::LemonSqueezy,
            body.clone(),
            Some(sign(Provider::LemonSqueezy, "nope", 0, &body)),
        ),
        (
            "lemon-squeezy: tampered",
            Provider::LemonSqueezy,
            format!("{body} "),
            Some(sign(
                Provider::LemonSqueezy,
                &secret(Provider::LemonSqueezy),
                0,
                &body,
            )),
        ),
        (
            "paddle: stale",
            Provider::Paddle,
            body.clone(),
            Some(sign(
                Provider::Paddle,
                &secret(Provider::Paddle),
                stale,
                &body,
            )),
        ),
        (
            "paddle: stripe's format",
            Provider::Paddle,
            body.clone(),
            Some(sign(stripe, &secret(Provider::Paddle), now(), &body)),
        ),
    ];
    for (what, provider, sent, header) in cases {
        let reply = post(world, FUNCTION, provider, &sent, header.as_deref()).await?;
        let problem = reply.problem(400, "invalid_signature").context(what)?;
        ensure_eq!(
            problem["detail"],
            json!("The signature is missing or invalid."),
            "{what}: no detail beyond that"
        );
        reply.documented(&world.openapi, "POST", &route(provider))?;
    }
    ensure_eq!(
        recorded(world, stripe, &event_id).await?,
        "0:-",
        "nothing recorded"
    );
    Ok(())
}
