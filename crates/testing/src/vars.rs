//! The variables a test builds a function (or one part of its
//! configuration) from, instead of a hand-assembled map:
//!
//! ```
//! use edge_testing::vars;
//!
//! let vars = vars::supabase("http://127.0.0.1:9")
//!     .demo_jwt_secret()
//!     .set("EMAIL_FROM", "Acme <support@acme.example>");
//! assert_eq!(vars.vars().optional("SUPABASE_ANON_KEY").as_deref(), Some(vars::ANON_KEY));
//! // SendEmail::from_vars(&vars.vars(), host), or vars.build::<SendEmail>(host)
//! ```

use std::collections::BTreeMap;

use edge_core::{Error, Function, Host, Source, Vars};

/// The anon key [`supabase`] sets (`SUPABASE_ANON_KEY`).
pub const ANON_KEY: &str = "stub-anon-key";
/// The service key [`supabase`] sets (`SUPABASE_SERVICE_ROLE_KEY`).
pub const SERVICE_KEY: &str = "stub-service-role-key";

/// Variables by name; later settings of a name replace earlier ones.
#[derive(Debug, Clone, Default)]
pub struct Builder(BTreeMap<String, String>);

/// No variables yet.
pub fn empty() -> Builder {
    Builder::default()
}

/// What every function reads of its Supabase project (`edge_db::Supabase`):
/// PostgREST at `postgrest_url`, the [`ANON_KEY`] and the [`SERVICE_KEY`].
pub fn supabase(postgrest_url: &str) -> Builder {
    empty()
        .set("POSTGREST_URL", postgrest_url)
        .set("SUPABASE_ANON_KEY", ANON_KEY)
        .set("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY)
}

/// `pairs`, in order.
pub fn of(pairs: &[(&str, &str)]) -> Builder {
    pairs
        .iter()
        .fold(empty(), |vars, (name, value)| vars.set(name, value))
}

impl Builder {
    /// The same with `name` set to `value`.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.0.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The same with `name` not set at all.
    pub fn unset(mut self, name: &str) -> Self {
        self.0.remove(name);
        self
    }

    /// The same with `SUPABASE_JWT_SECRET` the local demo secret, so the
    /// demo users' tokens ([`crate::tokens`]) verify.
    pub fn demo_jwt_secret(self) -> Self {
        self.set("SUPABASE_JWT_SECRET", crate::DEMO_JWT_SECRET)
    }

    /// What a `from_vars` reads.
    pub fn vars(&self) -> Vars<'_> {
        Vars(self)
    }

    /// Function `F` built from these variables with `host`.
    pub fn build<F: Function>(&self, host: Host) -> Result<F, Error> {
        F::from_vars(&self.vars(), host)
    }
}

impl Source for Builder {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}
