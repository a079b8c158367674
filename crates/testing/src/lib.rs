//! What tests across the workspace share, so none of them has to depend on
//! the whole local stack (`edge-stack`) to get it: Supabase-shaped demo
//! users and the tokens that act as them ([`tokens`]), fake timers and
//! clocks for a function's `edge_core::Host` ([`clock`]), the variables a
//! function is built from ([`vars`]), the fields a validation error names
//! ([`errors::fields`]), and, with the default `servers`
//! feature, one scripted and recording stub server ([`server`]) and the
//! stand-ins for the third parties ([`stubs`]: captcha, email, Auth's
//! JWKS, hosted Storage).
//!
//! The stack uses the same tokens and stand-ins (it re-exports [`tokens`]
//! and [`stubs`]), so a token a crate's test mints is one PostgREST and the
//! functions accept locally, and a stand-in answers a crate's test as it
//! answers the functions in the stack.

pub mod clock;
pub mod errors;
#[cfg(feature = "servers")]
pub mod server;
#[cfg(feature = "servers")]
pub mod stubs;
pub mod tokens;
pub mod vars;

pub use tokens::{DemoUser, DEMO_JWT_SECRET};
