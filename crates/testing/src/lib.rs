//! What tests across the workspace share, so none of them has to depend on
//! the whole local stack (`edge-stack`) to get it: Supabase-shaped demo
//! users and the tokens that act as them ([`tokens`]), fake timers and
//! clocks ([`clock`]), and the fields a validation error names
//! ([`errors::fields`]).
//!
//! The stack uses the same tokens (it re-exports [`tokens`]), so a token a
//! crate's test mints is one PostgREST and the functions accept locally.

pub mod clock;
pub mod errors;
pub mod tokens;

pub use tokens::{DemoUser, DEMO_JWT_SECRET};
