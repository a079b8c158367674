//! Signature backend for native builds (tests, tools): jwt-compact's
//! pure-Rust ES256 (`p256`) and RS256 (`rsa`).
//!
//! Same contract as `webcrypto.rs`: [`import`] turns checked key parameters
//! into a key once per JWKS fetch, [`verify`] checks one signature over the
//! token's signed part.

use std::sync::Arc;

use jwt_compact::alg::{Es256, Rsa, RsaPublicKey, RsaSignature, VerifyingKey as _};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmSignature};

use crate::jwks::KeyParams;

type P256Key = <Es256 as Algorithm>::VerifyingKey;
type P256Signature = <Es256 as Algorithm>::Signature;

#[derive(Clone)]
pub(crate) enum PublicKey {
    Es256(P256Key),
    Rs256(Arc<RsaPublicKey>),
}

pub(crate) async fn import(params: &KeyParams) -> Result<PublicKey, String> {
    match params {
        KeyParams::P256 { x, y } => {
            // SEC1 uncompressed point: 0x04 || x || y. Rejects points off the curve.
            let sec1: Vec<u8> = [&[4u8][..], x, y].concat();
            P256Key::from_slice(&sec1)
                .map(PublicKey::Es256)
                .map_err(|e| e.to_string())
        }
        KeyParams::Rsa { n, e } => {
            let jwk = JsonWebKey::Rsa {
                modulus: n.as_slice().into(),
                public_exponent: e.as_slice().into(),
                private_parts: None,
            };
            RsaPublicKey::try_from(&jwk)
                .map(|key| PublicKey::Rs256(Arc::new(key)))
                .map_err(|e| e.to_string())
        }
    }
}

/// `Ok(false)` for a signature that does not verify, including one of the
/// wrong shape; natively nothing can fail beyond that.
pub(crate) async fn verify(
    key: &PublicKey,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, String> {
    Ok(match key {
        PublicKey::Es256(key) => P256Signature::try_from_slice(signature)
            .is_ok_and(|sig| Es256.verify_signature(&sig, key, message)),
        PublicKey::Rs256(key) => RsaSignature::try_from_slice(signature)
            .is_ok_and(|sig| Rsa::rs256().verify_signature(&sig, key, message)),
    })
}
