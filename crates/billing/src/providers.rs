//! Everything that differs between billing providers, one row each.
//!
//! The function's routes and config, the signature check and `stack sign`
//! all read [`PROVIDERS`]; nothing else matches on [`Provider`]. Adding a
//! provider is a parser module, a row here, its fixtures and a migration
//! adding its label to the SQL `billing_provider` enum (CONTRIBUTING.md).

use edge_core::Error;

use crate::event::{Event, Provider};
use crate::signature::Timestamped;
use crate::{lemon_squeezy, paddle, stripe};

/// One provider.
#[derive(Debug)]
pub struct Spec {
    pub provider: Provider,
    /// Its label in SQL (`billing_provider`), logs and `stack sign`.
    pub slug: &'static str,
    /// Where it delivers: `/webhooks/<slug>` (a test holds them together).
    pub route: &'static str,
    /// The variable holding its signing secret(s); unset, its route is 404.
    pub secret_var: &'static str,
    /// The variable bounding how old a signed timestamp may be; `None` when
    /// the provider signs no time.
    pub tolerance_var: Option<&'static str>,
    /// The (lowercase) header its signature comes in.
    pub header: &'static str,
    /// How a timestamp and signatures share that header; `None`: the header
    /// is the bare hex digest of the body.
    pub(crate) timestamped: Option<Timestamped>,
    /// Its payload, read into the provider-neutral event.
    pub parse: fn(&[u8]) -> Result<Event, Error>,
}

pub const PROVIDERS: [Spec; 3] = [
    Spec {
        provider: Provider::Stripe,
        slug: "stripe",
        route: "/webhooks/stripe",
        secret_var: "STRIPE_WEBHOOK_SECRET",
        tolerance_var: Some("STRIPE_WEBHOOK_TOLERANCE_SECS"),
        header: "stripe-signature",
        // `t=<unix>,v1=<hex>[,v1=<hex>...]` over `<t>.<body>`.
        timestamped: Some(Timestamped {
            separator: ',',
            time_key: "t",
            signature_key: "v1",
            joiner: b".",
        }),
        parse: stripe::parse,
    },
    Spec {
        provider: Provider::LemonSqueezy,
        slug: "lemon-squeezy",
        route: "/webhooks/lemon-squeezy",
        secret_var: "LEMON_SQUEEZY_WEBHOOK_SECRET",
        tolerance_var: None,
        header: "x-signature",
        timestamped: None,
        parse: lemon_squeezy::parse,
    },
    Spec {
        provider: Provider::Paddle,
        slug: "paddle",
        route: "/webhooks/paddle",
        secret_var: "PADDLE_WEBHOOK_SECRET",
        tolerance_var: Some("PADDLE_WEBHOOK_TOLERANCE_SECS"),
        header: "paddle-signature",
        // `ts=<unix>;h1=<hex>[;h1=<hex>...]` over `<ts>:<body>`.
        timestamped: Some(Timestamped {
            separator: ';',
            time_key: "ts",
            signature_key: "h1",
            joiner: b":",
        }),
        parse: paddle::parse,
    },
];

impl Provider {
    /// Its row in [`PROVIDERS`].
    pub fn spec(self) -> &'static Spec {
        PROVIDERS
            .iter()
            .find(|spec| spec.provider == self)
            .unwrap_or_else(|| unreachable!("every provider has a row: checked by a test"))
    }

    pub fn as_str(self) -> &'static str {
        self.spec().slug
    }

    /// The provider whose slug this is (`stack sign stripe ...`).
    pub fn from_slug(slug: &str) -> Option<Self> {
        PROVIDERS
            .iter()
            .find(|spec| spec.slug == slug)
            .map(|spec| spec.provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serde's name for each provider (what the SQL enum receives) is its
    /// slug, and each provider has exactly one row.
    #[test]
    fn every_provider_has_one_row_named_as_sql_names_it() {
        // A new variant fails to compile here until it is listed (and then
        // `spec()` finds its row, or this test fails).
        for provider in [Provider::Stripe, Provider::LemonSqueezy, Provider::Paddle] {
            match provider {
                Provider::Stripe | Provider::LemonSqueezy | Provider::Paddle => {}
            }
            assert_eq!(provider.spec().provider, provider);
        }
        for spec in &PROVIDERS {
            assert_eq!(
                serde_json::to_value(spec.provider).unwrap_or_default(),
                serde_json::json!(spec.slug)
            );
            assert_eq!(
                PROVIDERS
                    .iter()
                    .filter(|s| s.provider == spec.provider)
                    .count(),
                1
            );
            assert_eq!(Provider::from_slug(spec.slug), Some(spec.provider));
            assert_eq!(spec.route, format!("/webhooks/{}", spec.slug));
            assert_eq!(spec.tolerance_var.is_some(), spec.timestamped.is_some());
        }
    }
}
