//! A small cache of tokens this isolate has already verified, so a client
//! sending the same access token on every request pays for one signature
//! check (a WebCrypto round trip for ES256) rather than one per request.
//!
//! Keyed by the token's SHA-256, so the cache holds no usable credential.
//! An entry is served only while the token is unexpired (`exp` itself, no
//! leeway) and for at most [`crate::jwks::MAX_AGE_SECS`] after it was
//! verified, and the whole cache is dropped whenever the JWKS is refetched:
//! a revoked signing key stops being honoured as soon as the key set does.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::jwks::MAX_AGE_SECS;
use crate::Claims;

/// Enough for the distinct users one isolate serves at once.
const CAPACITY: usize = 256;

pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Default)]
pub(crate) struct VerifiedTokens {
    entries: HashMap<TokenDigest, (i64, Claims)>,
}

impl VerifiedTokens {
    pub(crate) fn get(&self, digest: &TokenDigest, now: i64, leeway: i64) -> Option<Claims> {
        let (verified_at, claims) = self.entries.get(digest)?;
        let usable = now <= claims.exp
            && now >= *verified_at
            && now - verified_at < MAX_AGE_SECS
            && claims
                .nbf
                .is_none_or(|nbf| now >= nbf.saturating_sub(leeway));
        usable.then(|| claims.clone())
    }

    pub(crate) fn insert(&mut self, digest: TokenDigest, claims: &Claims, now: i64) {
        if now > claims.exp {
            // Accepted within the leeway only; not worth keeping.
            return;
        }
        if self.entries.len() >= CAPACITY {
            self.entries
                .retain(|_, (at, c)| now <= c.exp && now - *at < MAX_AGE_SECS);
        }
        if self.entries.len() >= CAPACITY {
            // Still full of live tokens: start over rather than track usage.
            self.entries.clear();
        }
        self.entries.insert(digest, (now, claims.clone()));
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}
