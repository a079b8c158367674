//! Billing webhooks: verified, exactly-once, in-order intake of payment providers' events.
//!
//! The `billing-webhook` function's logic, as an [`edge_core::Service`] that builds and
//! tests natively; `functions/billing-webhook` only adapts it to workerd. This slice
//! (the foundation) serves `/health`; the function's own issue adds its routes.

use edge_core::{Error, HttpConfig, Request, Response, Service, Vars};
use edge_db::{PostgrestConfig, ServiceDb, ServiceKey};

pub const NAME: &str = "billing-webhook";

pub struct BillingWebhooks {
    http: HttpConfig,
    service_db: ServiceDb,
}

impl BillingWebhooks {
    /// Reads the config once; see the README's table of variables.
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, Error> {
        let postgrest = PostgrestConfig::from_vars(vars)?;
        Ok(Self {
            http: HttpConfig::from_vars(vars)?,
            service_db: ServiceDb::new(&postgrest, &ServiceKey::from_vars(vars)?),
        })
    }
}

impl Service for BillingWebhooks {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
    fn http(&self) -> &HttpConfig {
        &self.http
    }
    async fn probe(&self) -> Result<(), Error> {
        self.service_db.ping().await
    }
    async fn handle(&self, _req: Request) -> Result<Response, Error> {
        Err(Error::NotFound)
    }
}
