//! The project's public signing keys (a JWK set, RFC 7517), fetched from
//! Supabase Auth and cached per isolate.
//!
//! Refresh rules, all driven by the caller's clock so tests can move time:
//! - keys older than [`MAX_AGE_SECS`] are refetched before use, so a
//!   revoked key stops working within minutes;
//! - a token whose `kid` is unknown triggers a refetch (the project may
//!   have rotated keys), but at most once per [`MIN_REFETCH_SECS`], so
//!   tokens with made-up kids cannot make us hammer the auth server;
//! - after a failed fetch we wait [`RETRY_AFTER_FAILURE_SECS`] (the
//!   `Retry-After` a 503 carries) before trying again, and meanwhile keep
//!   using the keys we already have. Without any key to use, the caller
//!   gets a 503: the client did nothing wrong.
//!
//! Each usable key is imported into the signature backend once per fetch
//! (a WebCrypto `CryptoKey` in workerd), not once per request.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edge_core::{Error, Sleep};
use serde::Deserialize;

use crate::backend::{self, PublicKey};
use crate::Alg;

/// Keys are refetched when older than this.
pub(crate) const MAX_AGE_SECS: i64 = 10 * 60;
/// An unknown `kid` triggers a refetch at most this often.
pub(crate) const MIN_REFETCH_SECS: i64 = 60;
/// After a failed fetch, the next attempt waits this long.
pub(crate) const RETRY_AFTER_FAILURE_SECS: i64 = 5;

/// A project's JWKS is a few keys of under a kilobyte each; an answer past
/// this is not one, and is not read further.
pub(crate) const MAX_JWKS_BYTES: usize = 64 * 1024;

/// RFC 7518 section 3.3: RS256 keys must be at least 2048 bits.
const MIN_RSA_MODULUS_BYTES: usize = 2048 / 8;

/// A usable public key and the one algorithm it verifies.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) alg: Alg,
    pub(crate) public: PublicKey,
}

/// Per `kid`: the key, or why it cannot be used (wrong `use`, unsupported
/// curve, too short, refused by the backend). Kept so a token naming an
/// unusable key gets a precise reason in the log.
type Entry = Result<Key, String>;

/// The decoded public parameters of a key we accept.
pub(crate) enum KeyParams {
    /// P-256 point, for ES256. Both coordinates are 32 bytes.
    P256 { x: Vec<u8>, y: Vec<u8> },
    /// RSA modulus and public exponent (big-endian), for RS256.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

pub(crate) struct JwksCache {
    url: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Entry>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<i64>,
    /// When the last fetch failed, and why; cleared by a success.
    failed: Option<(i64, String)>,
    /// When an unknown `kid` last made us refetch.
    kid_refetch_at: Option<i64>,
}

/// What to do for a `kid`, decided under the lock, acted on outside it.
enum Plan {
    Use(Entry),
    /// Fetch; if that fails, fall back to this (possibly stale) entry.
    Fetch(Option<Entry>),
    Fail(Error),
}

impl JwksCache {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            state: Mutex::new(State::default()),
        }
    }

    /// The key for `kid`, fetching the set when needed. `Ok((entry,
    /// refreshed))`: `refreshed` says the key set was just replaced, so
    /// anything verified against the old one should be forgotten.
    pub(crate) async fn key(
        &self,
        http: &reqwest::Client,
        deadline: (Sleep, Duration),
        kid: &str,
        now: i64,
    ) -> Result<(Entry, bool), Error> {
        let fallback = match self.plan(kid, now) {
            Plan::Use(entry) => return Ok((entry, false)),
            Plan::Fail(err) => return Err(err),
            Plan::Fetch(fallback) => fallback,
        };
        // The lock is not held here: other requests keep verifying with
        // the current keys while this one waits for the auth server.
        // fetch() in workerd has no timeout: an auth server that never
        // answers must not hold the request (and its CPU slot) forever.
        let (sleep, limit) = deadline;
        let fetched = fetch(http, &self.url, sleep, limit).await;
        match fetched {
            Ok(keys) => {
                let keys = import_all(keys).await;
                let mut state = self.lock();
                state.keys = keys;
                state.fetched_at = Some(now);
                state.failed = None;
                // Even when the kid is still unknown, the caller must learn
                // that the key set changed.
                let entry = state
                    .keys
                    .get(kid)
                    .cloned()
                    .unwrap_or_else(|| Err(format!("no key with kid {kid:?} in the JWKS")));
                Ok((entry, true))
            }
            Err(reason) => {
                self.lock().failed = Some((now, reason.clone()));
                match fallback {
                    Some(stale) => Ok((stale, false)),
                    None => Err(Error::unavailable(reason)),
                }
            }
        }
    }

    fn plan(&self, kid: &str, now: i64) -> Plan {
        let mut state = self.lock();
        let known = state.keys.get(kid).cloned();
        let fresh = state
            .fetched_at
            .is_some_and(|at| now.saturating_sub(at) < MAX_AGE_SECS);
        let backing_off = state
            .failed
            .as_ref()
            .filter(|(at, _)| now.saturating_sub(*at) < RETRY_AFTER_FAILURE_SECS)
            .map(|(at, reason)| format!("{reason} ({}s ago)", now.saturating_sub(*at)));

        match (fresh, known, backing_off) {
            (true, Some(entry), _) => Plan::Use(entry),
            // Never fetched, or too old: (re)fetch, keeping what we have
            // in case the auth server does not answer.
            (false, known, None) => Plan::Fetch(known),
            // The last attempt just failed: better old keys than none.
            (false, Some(stale), Some(_)) => Plan::Use(stale),
            (_, None, Some(reason)) => {
                Plan::Fail(Error::unavailable(format!("{reason}; kid {kid:?} unknown")))
            }
            // Current keys, unknown kid: maybe the project just rotated.
            (true, None, None) => {
                let recent = state
                    .kid_refetch_at
                    .is_some_and(|at| now.saturating_sub(at) < MIN_REFETCH_SECS);
                if recent {
                    return Plan::Fail(Error::unauthorized(format!(
                        "no key with kid {kid:?} in the JWKS (refetched less than \
                         {MIN_REFETCH_SECS}s ago)"
                    )));
                }
                // Claimed now, before fetching, so a burst of made-up kids
                // arriving together still costs one request.
                state.kid_refetch_at = Some(now);
                Plan::Fetch(None)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something ever did, the
        // state is still a consistent (if stale) cache.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Deserialize)]
struct JwkSet {
    /// Kept as raw values so one key we cannot read does not hide the rest.
    keys: Vec<serde_json::Value>,
}

/// The members of a JWK we look at (RFC 7517 section 4, RFC 7518 section 6).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The whole fetch, body included, within `limit`; at most
/// [`MAX_JWKS_BYTES`] read.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    sleep: Sleep,
    limit: Duration,
) -> Result<Vec<serde_json::Value>, String> {
    let request = http.get(url).header("accept", "application/json");
    let bounds = edge_outbound::Bounds {
        timeout: limit,
        max_body_bytes: MAX_JWKS_BYTES,
    };
    let answer = edge_outbound::call(request, sleep, bounds)
        .await
        .map_err(|failure| format!("JWKS fetch from {url}: {failure}"))?;
    if !(200..300).contains(&answer.status) {
        return Err(format!("JWKS fetch from {url} answered {}", answer.status));
    }
    let set: JwkSet = serde_json::from_slice(&answer.body)
        .map_err(|e| format!("JWKS from {url} is not a JWK set: {e}"))?;
    Ok(set.keys)
}

/// Classifies and imports every key that has a `kid`.
async fn import_all(keys: Vec<serde_json::Value>) -> HashMap<String, Entry> {
    let mut out: HashMap<String, Entry> = HashMap::new();
    for value in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        // Tokens name their key; a key without a name cannot be chosen.
        let Some(kid) = jwk.kid.clone() else {
            continue;
        };
        let entry = match classify(&jwk) {
            Ok((alg, params)) => backend::import(&params)
                .await
                .map(|public| Key { alg, public })
                .map_err(|e| format!("key {kid:?} was refused by the crypto backend: {e}")),
            Err(why) => Err(format!("key {kid:?} is unusable: {why}")),
        };
        // Should a kid repeat, a usable key wins over an unusable one.
        match out.get(&kid) {
            Some(Ok(_)) => {}
            Some(Err(_)) if entry.is_err() => {}
            _ => {
                out.insert(kid, entry);
            }
        }
    }
    out
}

/// Which algorithm a key may verify, from its `kty` (and `crv`, `alg`):
/// this binding is what stops a token from choosing how its signature is
/// checked. Symmetric (`oct`) keys are never accepted from a JWKS.
fn classify(jwk: &Jwk) -> Result<(Alg, KeyParams), String> {
    if let Some(usage) = jwk.usage.as_deref().filter(|u| *u != "sig") {
        return Err(format!("use is {usage:?}, not \"sig\""));
    }
    if let Some(ops) = &jwk.key_ops {
        if !ops.iter().any(|op| op == "verify") {
            return Err("key_ops does not include \"verify\"".into());
        }
    }
    let (alg, params) = match jwk.kty.as_str() {
        "EC" => {
            let crv = jwk.crv.as_deref().unwrap_or_default();
            if crv != "P-256" {
                return Err(format!("curve {crv:?} is not supported (only P-256)"));
            }
            let x = decode_field("x", jwk.x.as_deref())?;
            let y = decode_field("y", jwk.y.as_deref())?;
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates must be 32 bytes each".into());
            }
            (Alg::Es256, KeyParams::P256 { x, y })
        }
        "RSA" => {
            let mut n = decode_field("n", jwk.n.as_deref())?;
            let e = decode_field("e", jwk.e.as_deref())?;
            let leading_zeros = n.iter().take_while(|b| **b == 0).count();
            n.drain(..leading_zeros);
            if n.len() < MIN_RSA_MODULUS_BYTES {
                return Err(format!("RSA modulus is {} bits, under 2048", n.len() * 8));
            }
            if e.is_empty() || e.len() > 8 {
                return Err("RSA exponent is out of range".into());
            }
            (Alg::Rs256, KeyParams::Rsa { n, e })
        }
        other => return Err(format!("kty {other:?} is not supported")),
    };
    match jwk.alg.as_deref() {
        None => {}
        Some(named) if named == alg.name() => {}
        Some(named) => {
            return Err(format!(
                "alg {named:?} is not supported for kty {}",
                jwk.kty
            ))
        }
    }
    Ok((alg, params))
}

fn decode_field(name: &str, value: Option<&str>) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("{name} is missing"))?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| format!("{name} is not base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn classify_json(value: serde_json::Value) -> Result<Alg, String> {
        let jwk: Jwk = serde_json::from_value(value).map_err(|e| e.to_string())?;
        classify(&jwk).map(|(alg, _)| alg)
    }

    #[test]
    fn keys_bind_to_exactly_one_algorithm() {
        let c32 = b64(&[1; 32]);
        let n = b64(&[0xc1; 256]);
        let ec = |extra: serde_json::Value| {
            let mut jwk = json!({"kty": "EC", "crv": "P-256", "x": c32, "y": c32});
            for (k, v) in extra.as_object().into_iter().flatten() {
                jwk[k] = v.clone();
            }
            jwk
        };
        #[rustfmt::skip]
        let cases = [
            (ec(json!({})), Ok(Alg::Es256)),
            (ec(json!({"alg": "ES256", "use": "sig", "key_ops": ["verify"]})), Ok(Alg::Es256)),
            (json!({"kty": "RSA", "n": n, "e": "AQAB"}), Ok(Alg::Rs256)),
            (json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256"}), Ok(Alg::Rs256)),
            (ec(json!({"alg": "HS256"})), Err("alg")),
            (json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "PS256"}), Err("alg")),
            (ec(json!({"crv": "P-384"})), Err("curve")),
            (ec(json!({"x": b64(&[1; 31])})), Err("32 bytes")),
            (ec(json!({"x": "!!"})), Err("base64url")),
            (json!({"kty": "RSA", "n": b64(&[0xc1; 128]), "e": "AQAB"}), Err("under 2048")),
            (json!({"kty": "oct", "k": b64(b"a shared secret that must never verify")}), Err("kty")),
            (json!({"kty": "OKP", "crv": "Ed25519", "x": c32}), Err("kty")),
            (ec(json!({"use": "enc"})), Err("use")),
            (ec(json!({"key_ops": ["sign"]})), Err("key_ops")),
        ];
        for (jwk, expected) in cases {
            let got = classify_json(jwk.clone());
            match (expected, &got) {
                (Ok(alg), Ok(got_alg)) => assert_eq!(alg, *got_alg, "{jwk}"),
                (Err(needle), Err(why)) => assert!(why.contains(needle), "{jwk}: {why}"),
                _ => panic!("{jwk}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn leading_zeros_do_not_pad_a_short_modulus() {
        let mut n = vec![0; 200];
        n.extend([0xc1; 128]);
        let got = classify_json(json!({"kty": "RSA", "n": b64(&n), "e": "AQAB"}));
        assert!(got.is_err_and(|why| why.contains("1024 bits")));
    }
}
