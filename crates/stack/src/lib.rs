//! The whole local stack, without Docker: a throwaway PostgreSQL 15 cluster
//! loaded with `dev/bootstrap.sql`, the migrations and the seed; PostgREST 12
//! in front of it; and the built functions served by one `workerd`.
//!
//! Two callers shape it. Humans run the `stack` binary, which uses the fixed
//! dev ports Supabase's CLI uses (54321 PostgREST, 54322 Postgres, 8787+
//! functions). End-to-end tests call [`Stack::start`] with
//! [`StackOptions::ephemeral`], get free ports and their own temp directory,
//! and can run in parallel beside a developer's stack. Either way nothing
//! outlives the [`Stack`]: dropping it stops every process and deletes the
//! directory, and the kernel kills the servers if this process dies first.
//!
//! Left out on purpose: GoTrue, Storage and the API gateway. Tokens are minted
//! locally ([`tokens`]) with Supabase's demo secret and claim shapes, which is
//! all PostgREST and the functions look at.
//!
//! The stack knows no function by name: each declares its dev port and
//! local settings beside it, in `functions/<name>/Cargo.toml`
//! (`[package.metadata.edge-stack]`), which the stack reads. The modules
//! follow the seams: `options` (what to start), `bindings` (what each
//! function is given, and which of it is secret), `stand_ins` (the third
//! parties stood in for) and `stack` (the processes, started in order).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use edge_stack::{DemoUser, Stack, StackOptions};
//!
//! let stack = Stack::start(StackOptions::ephemeral()).await?;
//! let url = format!("{}/health", stack.function_url("send-email"));
//! let token = stack.user_token(DemoUser::Owner);
//! # Ok(()) }
//! ```

pub mod bench;
mod bindings;
pub mod contract;
pub mod counter;
mod net;
mod options;
mod postgres;
mod postgrest;
mod process;
pub mod s3;
mod stack;
mod stand_ins;
mod workerd;

pub use bindings::{
    is_secret_binding, webhook_secret, POSTMARK_WEBHOOK_PASSWORD, POSTMARK_WEBHOOK_USER,
    RESEND_WEBHOOK_SECRET, SECRET_BINDINGS, STORAGE_JWT_SECRET,
};
/// The third parties' stand-ins, from the shared test-support crate.
pub use edge_testing::stubs;
/// Demo users and their tokens, from the shared test-support crate.
pub use edge_testing::tokens;
pub use options::{pgtap_files, repo_root, PortChoice, Services, StackOptions, Variant};
pub use stack::{Stack, Timing};
pub use tokens::{DemoUser, DEMO_JWT_SECRET};

/// Dev port of PostgREST (Supabase CLI's API port).
pub const DEV_POSTGREST_PORT: u16 = 54321;
/// Dev port of PostgreSQL (Supabase CLI's database port).
pub const DEV_POSTGRES_PORT: u16 = 54322;
/// Wrangler's default port, where the functions' dev ports begin: each
/// function declares its own (`dev-port` in `[package.metadata.edge-stack]`
/// of `functions/<name>/Cargo.toml`), and variants and JavaScript workers
/// take the ports after the highest (from this one when no function is
/// served).
pub const DEV_FIRST_FUNCTION_PORT: u16 = 8787;
