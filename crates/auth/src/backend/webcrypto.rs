//! Signature backend for workerd: WebCrypto (`crypto.subtle`), which runs
//! ES256 in native code at about a fourteenth of the CPU that pure-Rust
//! `p256` costs inside the isolate, and keeps `p256`/`rsa` out of the wasm.
//!
//! Same contract as `native.rs`: [`import`] turns checked key parameters
//! into a `CryptoKey` once per JWKS fetch, [`verify`] checks one signature
//! over the token's signed part.
//!
//! WebCrypto API: <https://w3c.github.io/webcrypto/#SubtleCrypto-method-importKey>
//! and `#SubtleCrypto-method-verify`. Its ECDSA signatures are the raw
//! `r || s` form that JWS uses too (RFC 7518 section 3.4), so the token's
//! signature bytes go in unchanged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edge_outbound::driven::settle;
use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CryptoKey, SubtleCrypto};

use crate::jwks::KeyParams;

#[derive(Clone)]
pub(crate) struct PublicKey {
    key: CryptoKey,
    /// The `algorithm` argument of `verify` for this key.
    verify_params: Object,
}

pub(crate) async fn import(params: &KeyParams) -> Result<PublicKey, String> {
    // Only the members WebCrypto needs: an `alg`, `use` or `key_ops` from
    // the JWKS could only make the import fail, never make it safer.
    let (jwk, import_params, verify_params) = match params {
        KeyParams::P256 { x, y } => (
            serde_json::json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
            }),
            serde_json::json!({ "name": "ECDSA", "namedCurve": "P-256" }),
            serde_json::json!({ "name": "ECDSA", "hash": "SHA-256" }),
        ),
        KeyParams::Rsa { n, e } => (
            serde_json::json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(n),
                "e": URL_SAFE_NO_PAD.encode(e),
            }),
            serde_json::json!({ "name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256" }),
            serde_json::json!({ "name": "RSASSA-PKCS1-v1_5" }),
        ),
    };
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle()?
        .import_key_with_object(
            "jwk",
            &js_object(&jwk)?,
            &js_object(&import_params)?,
            false,
            &usages,
        )
        .map_err(js_error)?;
    let key = settle(promise).await.map_err(js_error)?;
    Ok(PublicKey {
        key: key.unchecked_into(),
        verify_params: js_object(&verify_params)?,
    })
}

/// `Ok(false)` for a signature that does not verify; `Err` only when
/// WebCrypto itself fails (not there, or it threw).
pub(crate) async fn verify(
    key: &PublicKey,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, String> {
    // WebCrypto copies both buffers before `verify` returns its promise,
    // so passing views into wasm memory is safe.
    let promise = subtle()?
        .verify_with_object_and_u8_array_and_u8_array(
            &key.verify_params,
            &key.key,
            signature,
            message,
        )
        .map_err(js_error)?;
    let result = settle(promise).await.map_err(js_error)?;
    result
        .as_bool()
        .ok_or_else(|| "crypto.subtle.verify did not resolve to a boolean".to_owned())
}

/// `crypto.subtle` from the global scope. workerd's global is neither a
/// `Window` nor (to `instanceof`) a `WorkerGlobalScope`, so it is read by
/// name rather than through web-sys's typed accessors.
fn subtle() -> Result<SubtleCrypto, String> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).map_err(js_error)?;
    if !crypto.is_object() {
        return Err("the global scope has no `crypto`".to_owned());
    }
    let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle")).map_err(js_error)?;
    if !subtle.is_object() {
        return Err("the global scope has no `crypto.subtle`".to_owned());
    }
    Ok(subtle.unchecked_into())
}

fn js_object(value: &serde_json::Value) -> Result<Object, String> {
    JSON::parse(&value.to_string())
        .map(JsCast::unchecked_into)
        .map_err(js_error)
}

fn js_error(value: JsValue) -> String {
    if let Some(err) = value.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}
