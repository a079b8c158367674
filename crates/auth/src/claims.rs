//! The claims Supabase Auth writes into a user's access token.
//!
//! Field by field as in Supabase's "JWT claims reference"
//! (<https://supabase.com/docs/guides/auth/jwt-fields>). Only what a function
//! may act on is typed; `amr` and any custom claims from an access-token
//! hook are not kept.

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// A verified token's claims. Only [`crate::Verifier`] hands these out
/// after checking the signature, so holding one means they were signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id (`auth.users.id`, what `auth.uid()` returns in SQL).
    pub sub: Uuid,
    /// The Postgres role PostgREST switches to: `authenticated` for users,
    /// `anon` and `service_role` for Supabase's API keys. Empty when absent,
    /// which verification refuses.
    #[serde(default, deserialize_with = "null_as_default")]
    pub role: String,
    /// The user's email; `None` when absent or empty (phone and anonymous
    /// users get `""` from Supabase).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub email: Option<String>,
    /// The user's phone number; `None` when absent or empty.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub phone: Option<String>,
    /// True for users created by an anonymous sign-in. They have role
    /// `authenticated` all the same, so a route that needs a real account
    /// must look here ([`crate::Policy::User`] does).
    #[serde(default, deserialize_with = "null_as_default")]
    pub is_anonymous: bool,
    /// The session (`auth.sessions.id`) the token belongs to.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// Authenticator assurance level: `aal1` (one factor) or `aal2` (MFA).
    #[serde(default)]
    pub aal: Option<String>,
    /// Set by the server only (`provider`, `providers`, custom fields an
    /// admin wrote). Trustworthy for authorization decisions.
    #[serde(default)]
    pub app_metadata: serde_json::Value,
    /// Set by the user themselves through `auth.updateUser`. Never base an
    /// authorization decision on it.
    #[serde(default)]
    pub user_metadata: serde_json::Value,
    /// Who the token is for; verification requires the configured audience.
    #[serde(default)]
    pub aud: Audience,
    /// Who issued it (`https://<ref>.supabase.co/auth/v1`).
    #[serde(default)]
    pub iss: Option<String>,
    /// Expiry, Unix seconds. Always present in a verified token.
    ///
    /// The `default` only matters when deserializing inside jwt-compact's
    /// `Claims<T>`, which lifts `exp`, `nbf` and `iat` out before `T` sees
    /// them; the verifier puts them back.
    #[serde(default)]
    pub exp: i64,
    /// Not valid before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

/// The `aud` claim: RFC 7519 allows one string or an array of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Default for Audience {
    /// No audience at all: matches nothing.
    fn default() -> Self {
        Audience::Many(Vec::new())
    }
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// `null` reads as the type's default, as if the claim were absent.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

fn empty_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn supabase_access_token_claims_parse() {
        let claims: Claims = serde_json::from_value(json!({
            "iss": "https://abc.supabase.co/auth/v1",
            "sub": "11111111-1111-4111-8111-111111111111",
            "aud": "authenticated",
            "exp": 1_700_003_600,
            "iat": 1_700_000_000,
            "email": "owner@example.com",
            "phone": "",
            "app_metadata": { "provider": "email", "providers": ["email"] },
            "user_metadata": {},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{ "method": "password", "timestamp": 1_700_000_000 }],
            "session_id": "44444444-4444-4444-8444-444444444444",
            "is_anonymous": false,
        }))
        .expect("claims");
        assert_eq!(claims.email.as_deref(), Some("owner@example.com"));
        assert_eq!(claims.phone, None, "empty phone reads as none");
        assert!(claims.aud.contains("authenticated"));
        assert_eq!(claims.app_metadata["provider"], "email");
        assert_eq!(claims.exp, 1_700_003_600);
        assert!(claims.session_id.is_some());
    }

    #[test]
    fn audience_is_a_string_or_a_list() {
        let one: Audience = serde_json::from_value(json!("authenticated")).expect("one");
        let many: Audience = serde_json::from_value(json!(["x", "authenticated"])).expect("many");
        assert!(one.contains("authenticated") && many.contains("authenticated"));
        assert!(!many.contains("auth"));
        assert!(!Audience::default().contains("authenticated"));
    }

    #[test]
    fn minimal_and_null_claims_take_defaults() {
        let claims: Claims = serde_json::from_value(json!({
            "sub": "11111111-1111-4111-8111-111111111111",
            "role": null,
            "is_anonymous": null,
            "app_metadata": null,
        }))
        .expect("claims");
        assert_eq!(claims.role, "");
        assert!(!claims.is_anonymous);
        assert!(claims.app_metadata.is_null());
        assert!(!claims.aud.contains("authenticated"));
    }
}
