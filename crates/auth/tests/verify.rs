//! Verification end to end, natively: real tokens signed with keys made in
//! the test, a JWKS served by a stub HTTP server that counts its requests,
//! and a clock the tests move by hand.

use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edge_auth::{JwtConfig, JwtSecret, Policy, Verifier};
use edge_core::{Error, Method, Request};
use edge_testing::clock::tokio_sleep;
use edge_testing::server::{Reply, Server};
// Where the stub serves the JWKS, as Supabase Auth does.
use edge_testing::stubs::JWKS_PATH;
use jwt_compact::alg::{Es256, Hs256, Hs256Key, ModulusBits, Rsa, RsaPrivateKey, SigningKey as _};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmExt as _, AlgorithmSignature as _, Header};
use serde_json::{json, Value};

const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";
const NOW: i64 = 1_700_000_000;
const USER_ID: &str = "11111111-1111-4111-8111-111111111111";
const OTHER_ID: &str = "99999999-9999-4999-8999-999999999999";
const ES_KID: &str = "es-key-1";
const RS_KID: &str = "rs-key-1";

type EsSigningKey = <Es256 as Algorithm>::SigningKey;

// ---------------------------------------------------------------- tokens

/// Claims as Supabase Auth writes them for an email sign-in at `NOW`.
fn user_claims() -> Value {
    json!({
        "iss": "https://abc.supabase.co/auth/v1",
        "sub": USER_ID,
        "aud": "authenticated",
        "exp": NOW + 3600,
        "iat": NOW,
        "email": "owner@example.com",
        "phone": "",
        "app_metadata": { "provider": "email", "providers": ["email"] },
        "user_metadata": { "name": "Owner" },
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{ "method": "password", "timestamp": NOW }],
        "session_id": "44444444-4444-4444-8444-444444444444",
        "is_anonymous": false,
    })
}

/// `user_claims` with some members replaced (`null` removes one).
fn claims_with(changes: Value) -> Value {
    let mut claims = user_claims();
    for (name, value) in changes.as_object().expect("an object").clone() {
        match value {
            Value::Null => {
                claims.as_object_mut().expect("object").remove(&name);
            }
            value => claims[name] = value,
        }
    }
    claims
}

fn hs256_with(secret: &[u8], claims: &Value) -> String {
    Hs256
        .token(
            &Header::empty(),
            &jwt_compact::Claims::new(claims.clone()),
            &Hs256Key::new(secret),
        )
        .expect("sign")
}

fn hs256(claims: &Value) -> String {
    hs256_with(SECRET.as_bytes(), claims)
}

fn es_key() -> EsSigningKey {
    EsSigningKey::from_slice(&[0x11; 32]).expect("P-256 scalar")
}

fn es_key_2() -> EsSigningKey {
    EsSigningKey::from_slice(&[0x22; 32]).expect("P-256 scalar")
}

fn es256(key: &EsSigningKey, kid: &str, claims: &Value) -> String {
    Es256
        .token(
            &Header::empty().with_key_id(kid),
            &jwt_compact::Claims::new(claims.clone()),
            key,
        )
        .expect("sign")
}

/// One 2048-bit key per test binary: generating it is the slow part.
fn rs_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let (key, _) = Rsa::generate(&mut rand_core::OsRng, ModulusBits::TwoKibibytes)
            .expect("RSA key generation");
        key.into_inner()
    })
}

fn rs256(kid: &str, claims: &Value) -> String {
    Rsa::rs256()
        .token(
            &Header::empty().with_key_id(kid),
            &jwt_compact::Claims::new(claims.clone()),
            rs_key(),
        )
        .expect("sign")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token put together by hand, for headers and signatures no honest
/// library would produce.
fn raw_token(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    raw_parts(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        sign,
    )
}

fn raw_parts(header: &[u8], claims: &[u8], sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let signed = format!("{}.{}", b64(header), b64(claims));
    let signature = sign(signed.as_bytes());
    format!("{signed}.{}", b64(&signature))
}

/// `good`'s header and signature around `other`'s payload.
fn swap_payload(good: &str, other: &str) -> String {
    let good: Vec<&str> = good.split('.').collect();
    let other: Vec<&str> = other.split('.').collect();
    format!("{}.{}.{}", good[0], other[1], good[2])
}

fn hmac(secret: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> {
    let key = Hs256Key::new(secret);
    move |data| Hs256.sign(&key, data).as_bytes().into_owned()
}

// ------------------------------------------------------------ JWKS stub

fn es_jwk(key: &EsSigningKey, kid: &str) -> Value {
    let public = key.to_verifying_key();
    let mut jwk = serde_json::to_value(JsonWebKey::from(&public)).expect("jwk");
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    jwk["key_ops"] = json!(["verify"]);
    jwk["ext"] = json!(true);
    jwk
}

fn rs_jwk(kid: &str) -> Value {
    let public = rs_key().to_public_key();
    let mut jwk = serde_json::to_value(JsonWebKey::from(&public)).expect("jwk");
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!("RS256");
    jwk
}

/// The JWKS Supabase would publish with one ES256 and one RS256 key.
fn jwks() -> Value {
    json!({ "keys": [es_jwk(&es_key(), ES_KID), rs_jwk(RS_KID)] })
}

/// A JWKS endpoint on a free local port. Its answer can be changed while
/// it runs; it counts the requests it gets.
struct JwksStub {
    /// The JWKS URL.
    url: String,
    server: Server,
    answer: Arc<Mutex<Reply>>,
}

impl JwksStub {
    async fn start(jwks: Value) -> Self {
        let answer = Arc::new(Mutex::new(Self::json(200, &jwks.to_string())));
        let serving = Arc::clone(&answer);
        let server = Server::start(move |request| match request.path.as_str() {
            JWKS_PATH if request.method == "GET" => serving.lock().expect("lock").clone(),
            JWKS_PATH => Reply::status(405),
            _ => Reply::status(404),
        })
        .await;
        Self {
            url: format!("{}{JWKS_PATH}", server.url()),
            server,
            answer,
        }
    }

    fn json(status: u16, body: &str) -> Reply {
        Reply::body(status, "application/json", body)
    }

    fn hits(&self) -> usize {
        self.server.requests_to(JWKS_PATH).len()
    }

    fn serve(&self, status: u16, body: &str) {
        *self.answer.lock().expect("lock") = Self::json(status, body);
    }
}

/// A URL nothing listens on, and the socket that holds its port.
fn dead_url() -> (String, tokio::net::TcpSocket) {
    let (url, socket) = edge_testing::server::refused_url().expect("a refused port");
    (format!("{url}{JWKS_PATH}"), socket)
}

// ------------------------------------------------------------ verifiers

fn config(jwks_url: Option<&str>) -> JwtConfig {
    JwtConfig {
        secret: Some(JwtSecret::new(SECRET).expect("secret")),
        jwks_url: jwks_url.map(str::to_owned),
        audience: "authenticated".into(),
        issuer: None,
        leeway_secs: 30,
        jwks_timeout_ms: 5000,
    }
}

fn verifier(config: JwtConfig) -> Verifier {
    Verifier::new(config, reqwest::Client::new(), tokio_sleep)
}

fn reason(err: &Error) -> String {
    err.log_detail().unwrap_or_default()
}

#[track_caller]
fn assert_unauthorized(result: Result<impl std::fmt::Debug, Error>, needle: &str, case: &str) {
    match result {
        Err(err @ Error::Unauthorized { .. }) => {
            assert!(
                reason(&err).contains(needle),
                "{case}: reason {:?} lacks {needle:?}",
                reason(&err)
            );
        }
        other => panic!("{case}: expected 401 ({needle}), got {other:?}"),
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn valid_hs256_token_yields_typed_claims() {
    let v = verifier(config(None));
    let claims = v.verify(&hs256(&user_claims()), NOW).await.expect("valid");
    assert_eq!(claims.sub.to_string(), USER_ID);
    assert_eq!(claims.role, "authenticated");
    assert_eq!(claims.email.as_deref(), Some("owner@example.com"));
    assert_eq!(claims.phone, None);
    assert_eq!(claims.aal.as_deref(), Some("aal1"));
    assert_eq!(claims.user_metadata["name"], "Owner");
    assert_eq!(
        claims.exp,
        NOW + 3600,
        "exp is put back after jwt-compact lifts it"
    );
    assert_eq!(claims.iat, Some(NOW));
    assert_eq!(claims.nbf, None);
    assert!(!claims.is_anonymous);
}

#[tokio::test]
async fn valid_es256_and_rs256_tokens_verify_against_the_jwks() {
    let stub = JwksStub::start(jwks()).await;
    let v = verifier(config(Some(&stub.url)));
    for (name, token) in [
        ("ES256", es256(&es_key(), ES_KID, &user_claims())),
        ("RS256", rs256(RS_KID, &user_claims())),
    ] {
        let claims = v
            .verify(&token, NOW)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(claims.sub.to_string(), USER_ID, "{name}");
    }
    assert_eq!(stub.hits(), 1, "one fetch serves both keys");
}

#[tokio::test]
async fn hs256_tokens_never_fetch_the_jwks() {
    let stub = JwksStub::start(jwks()).await;
    let v = verifier(config(Some(&stub.url)));
    v.verify(&hs256(&user_claims()), NOW).await.expect("valid");
    assert_eq!(stub.hits(), 0);
}

#[tokio::test]
async fn rejected_tokens_are_401_with_a_precise_reason() {
    let stub = JwksStub::start(jwks()).await;
    let v = verifier(config(Some(&stub.url)));
    let es_public_jwk = es_jwk(&es_key(), ES_KID).to_string();
    let es_public_sec1 = {
        let jwk = es_jwk(&es_key(), ES_KID);
        let coord = |c: &str| {
            URL_SAFE_NO_PAD
                .decode(jwk[c].as_str().unwrap_or_default())
                .expect("b64")
        };
        [vec![4u8], coord("x"), coord("y")].concat()
    };
    let claims = user_claims();

    let forged =
        |header: Value, signature: Vec<u8>| raw_token(&header, &claims, move |_| signature.clone());
    let hmac_by = |header: Value, secret: &[u8]| raw_token(&header, &claims, hmac(secret));
    let hs = |changes: Value| hs256(&claims_with(changes));
    let secret = SECRET.as_bytes();

    #[rustfmt::skip]
    let cases: Vec<(&str, String, &str)> = vec![
        // The algorithm.
        ("alg none", forged(json!({ "alg": "none" }), vec![]), "alg none"),
        ("alg none, signed", hmac_by(json!({ "alg": "none" }), secret), "alg none"),
        ("alg None", forged(json!({ "alg": "None" }), vec![]), "not accepted"),
        ("alg HS512", hmac_by(json!({ "alg": "HS512" }), secret), "not accepted"),
        ("alg PS256", forged(json!({ "alg": "PS256", "kid": RS_KID }), vec![0; 256]), "not accepted"),
        // Algorithm confusion: the public key used as an HMAC secret.
        ("HS256 keyed with the JWK", hmac_by(json!({ "alg": "HS256", "kid": ES_KID }), es_public_jwk.as_bytes()), "HS256 signature does not verify"),
        ("HS256 keyed with SEC1 bytes", hmac_by(json!({ "alg": "HS256", "kid": ES_KID }), &es_public_sec1), "HS256 signature does not verify"),
        // An HMAC passed off as ES256 / RS256.
        ("ES256 header, HMAC signature", hmac_by(json!({ "alg": "ES256", "kid": ES_KID }), secret), "not 64"),
        ("RS256 header, HMAC signature", hmac_by(json!({ "alg": "RS256", "kid": RS_KID }), secret), "RS256 signature does not verify"),
        // The token's alg must be its key's.
        ("RS256 header, ES256 key", forged(json!({ "alg": "RS256", "kid": ES_KID }), vec![0; 256]), "alg mismatch"),
        ("ES256 header, RS256 key", forged(json!({ "alg": "ES256", "kid": RS_KID }), vec![0; 64]), "alg mismatch"),
        ("ES256 without kid", forged(json!({ "alg": "ES256" }), vec![0; 64]), "without a kid"),
        ("ES256 with a huge kid", forged(json!({ "alg": "ES256", "kid": "k".repeat(500) }), vec![0; 64]), "kid is 500 bytes"),
        ("alg that fills the log", forged(json!({ "alg": "X".repeat(500) }), vec![]), "not accepted"),
        // Signatures.
        ("wrong secret", hs256_with(b"another-secret-that-is-at-least-32-bytes!", &claims), "HS256 signature does not verify"),
        ("ES256 by another key, our kid", es256(&es_key_2(), ES_KID, &claims), "ES256 signature does not verify"),
        ("payload swapped after signing", swap_payload(&hs256(&claims), &hs(json!({ "sub": OTHER_ID }))), "HS256 signature does not verify"),
        // Time.
        ("expired", hs(json!({ "exp": NOW - 31 })), "expired"),
        ("no exp", hs(json!({ "exp": null })), "no exp"),
        ("nbf in the future", hs(json!({ "nbf": NOW + 31 })), "not valid before"),
        // Audience, role, shape of the claims.
        ("wrong aud", hs(json!({ "aud": "someone-else" })), "does not include"),
        ("aud list without ours", hs(json!({ "aud": ["a", "b"] })), "does not include"),
        ("no aud", hs(json!({ "aud": null })), "does not include"),
        ("no role", hs(json!({ "role": null })), "no role"),
        ("sub not a uuid", hs(json!({ "sub": "admin" })), "claims do not parse"),
        ("Supabase anon key", hs256(&json!({ "iss": "supabase", "role": "anon", "exp": NOW + 60 })), "role \"anon\""),
        ("claims not JSON", raw_parts(br#"{"alg":"HS256"}"#, b"{", hmac(secret)), "claims do not parse"),
        ("claims an array", raw_parts(br#"{"alg":"HS256"}"#, b"[1]", hmac(secret)), "claims do not parse"),
        // Not a JWT at all.
        ("empty", String::new(), "malformed token"),
        ("garbage", "not a token".into(), "malformed token"),
        ("two segments", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0".into(), "malformed token"),
        ("four segments", format!("{}.x", hs256(&claims)), "malformed token"),
        ("bad base64", "eyJhbGciOiJIUzI1NiJ9.!!!.sig".into(), "malformed token"),
        ("header not JSON", raw_parts(b"{alg", b"{}", hmac(secret)), "malformed token"),
        ("header an array", raw_parts(b"[1]", b"{}", hmac(secret)), "malformed token"),
        ("header without alg", hmac_by(json!({ "typ": "JWT" }), secret), "malformed token"),
        ("publishable API key", "sb_publishable_abcdefghijklmnop".into(), "Supabase API key"),
        ("too long", format!("{}.{}.x", b64(br#"{"alg":"HS256"}"#), "A".repeat(20_000)), "over the"),
    ];
    for (case, token, needle) in cases {
        let result = v.verify(&token, NOW).await;
        if let Err(err) = &result {
            if !token.is_empty() {
                assert!(
                    !reason(err).contains(&token),
                    "{case}: the reason quotes the token"
                );
            }
        }
        assert_unauthorized(result, needle, case);
    }
}

#[tokio::test]
async fn tokens_need_a_key_of_their_kind() {
    // No secret: HS256 cannot be checked, even when it names a JWKS key.
    let stub = JwksStub::start(jwks()).await;
    let jwks_only = verifier(JwtConfig {
        secret: None,
        ..config(Some(&stub.url))
    });
    let confused = raw_token(
        &json!({ "alg": "HS256", "kid": ES_KID }),
        &user_claims(),
        hmac(es_jwk(&es_key(), ES_KID).to_string().as_bytes()),
    );
    assert_unauthorized(
        jwks_only.verify(&confused, NOW).await,
        "SUPABASE_JWT_SECRET is not configured",
        "no secret",
    );
    assert_eq!(
        stub.hits(),
        0,
        "an HS256 token never makes us look at the JWKS"
    );

    // No JWKS: ES256 cannot be checked.
    let secret_only = verifier(config(None));
    let token = es256(&es_key(), ES_KID, &user_claims());
    assert_unauthorized(
        secret_only.verify(&token, NOW).await,
        "no JWKS URL",
        "no jwks",
    );
}

#[tokio::test]
async fn unusable_jwks_keys_are_named_in_the_reason() {
    let mut symmetric = json!({ "kty": "oct", "kid": "oct-1", "k": b64(SECRET.as_bytes()) });
    symmetric["alg"] = json!("HS256");
    let mut encryption = es_jwk(&es_key_2(), "enc-1");
    encryption["use"] = json!("enc");
    let stub = JwksStub::start(
        json!({ "keys": [es_jwk(&es_key(), ES_KID), symmetric, encryption, { "kty": 7 }] }),
    )
    .await;
    let v = verifier(config(Some(&stub.url)));

    let token = raw_token(
        &json!({ "alg": "ES256", "kid": "oct-1" }),
        &user_claims(),
        |_| vec![0; 64],
    );
    assert_unauthorized(
        v.verify(&token, NOW).await,
        "kty \"oct\" is not supported",
        "oct key",
    );
    let token = es256(&es_key_2(), "enc-1", &user_claims());
    assert_unauthorized(v.verify(&token, NOW).await, "not \"sig\"", "enc key");
    // The readable key still works next to the broken ones.
    v.verify(&es256(&es_key(), ES_KID, &user_claims()), NOW)
        .await
        .expect("valid");
    assert_eq!(stub.hits(), 1);
}

#[tokio::test]
async fn leeway_is_honoured_for_exp_and_nbf() {
    let v = verifier(config(None));
    let strict = verifier(JwtConfig {
        leeway_secs: 0,
        ..config(None)
    });
    let cases = [
        ("exp 20s ago", json!({ "exp": NOW - 20 }), true, false),
        ("exp 30s ago", json!({ "exp": NOW - 30 }), true, false),
        ("exp 31s ago", json!({ "exp": NOW - 31 }), false, false),
        ("exp now", json!({ "exp": NOW }), true, true),
        ("nbf in 20s", json!({ "nbf": NOW + 20 }), true, false),
        ("nbf in 31s", json!({ "nbf": NOW + 31 }), false, false),
        ("nbf now", json!({ "nbf": NOW }), true, true),
    ];
    for (case, changes, with_leeway, without) in cases {
        let token = hs256(&claims_with(changes));
        assert_eq!(
            v.verify(&token, NOW).await.is_ok(),
            with_leeway,
            "{case}, leeway 30"
        );
        assert_eq!(
            strict.verify(&token, NOW).await.is_ok(),
            without,
            "{case}, leeway 0"
        );
    }
}

#[tokio::test]
async fn verified_tokens_are_not_served_past_exp() {
    let v = verifier(config(None));
    let token = hs256(&claims_with(json!({ "exp": NOW + 60 })));
    v.verify(&token, NOW).await.expect("fresh");
    v.verify(&token, NOW + 60).await.expect("at exp");
    v.verify(&token, NOW + 80).await.expect("within the leeway");
    assert_unauthorized(
        v.verify(&token, NOW + 91).await,
        "expired",
        "past the leeway",
    );
}

#[tokio::test]
async fn issuer_must_match_exactly_when_configured() {
    let v = verifier(JwtConfig {
        issuer: Some("https://abc.supabase.co/auth/v1".into()),
        ..config(None)
    });
    v.verify(&hs256(&user_claims()), NOW)
        .await
        .expect("matching iss");
    for (case, iss) in [
        ("other project", json!("https://xyz.supabase.co/auth/v1")),
        ("trailing slash", json!("https://abc.supabase.co/auth/v1/")),
        ("missing", Value::Null),
    ] {
        let token = hs256(&claims_with(json!({ "iss": iss })));
        assert_unauthorized(v.verify(&token, NOW).await, "iss", case);
    }
    // Unconfigured, any issuer passes.
    let token = hs256(&claims_with(
        json!({ "iss": "https://xyz.supabase.co/auth/v1" }),
    ));
    verifier(config(None))
        .verify(&token, NOW)
        .await
        .expect("iss unchecked");
}

fn bearer(token: &str) -> Request {
    Request::new(Method::Post, "/tickets").with_header("Authorization", &format!("Bearer {token}"))
}

#[tokio::test]
async fn authenticate_admits_by_role_and_policy() {
    let v = verifier(config(None));
    let anonymous = json!({ "is_anonymous": true, "email": "" });
    #[rustfmt::skip]
    let cases = [
        ("user", json!({}), Policy::User, Ok(())),
        ("user", json!({}), Policy::AnyUser, Ok(())),
        ("anonymous user", anonymous.clone(), Policy::User, Err("anonymous user")),
        ("anonymous user", anonymous, Policy::AnyUser, Ok(())),
        ("anon role", json!({ "role": "anon" }), Policy::AnyUser, Err("role \"anon\" is not a user")),
        ("service_role", json!({ "role": "service_role" }), Policy::AnyUser, Err("role \"service_role\" is not a user")),
        ("service_role", json!({ "role": "service_role" }), Policy::User, Err("role \"service_role\" is not a user")),
        ("custom role", json!({ "role": "supabase_admin" }), Policy::AnyUser, Err("is not a user")),
    ];
    for (case, changes, policy, expected) in cases {
        let result = v
            .authenticate(&bearer(&hs256(&claims_with(changes))), NOW, policy)
            .await;
        let case = format!("{case} under {policy:?}");
        match expected {
            Ok(()) => {
                result.unwrap_or_else(|e| panic!("{case}: {e}"));
            }
            Err(needle) => assert_unauthorized(result, needle, &case),
        }
    }
    let no_header = Request::new(Method::Post, "/tickets");
    assert_unauthorized(
        v.authenticate(&no_header, NOW, Policy::AnyUser).await,
        "no Authorization",
        "no header",
    );
    let basic =
        Request::new(Method::Post, "/tickets").with_header("authorization", "Basic dXNlcjpwYXNz");
    assert_unauthorized(
        v.authenticate(&basic, NOW, Policy::AnyUser).await,
        "not Bearer",
        "basic",
    );
}

#[tokio::test]
async fn authenticated_user_carries_the_verified_token() {
    let v = verifier(config(None));
    let token = hs256(&user_claims());
    let req =
        Request::new(Method::Get, "/x").with_header("authorization", &format!("bearer   {token}"));
    let user = v.authenticate(&req, NOW, Policy::User).await.expect("user");
    assert_eq!(user.token(), token);
    assert_eq!(user.user_id().to_string(), USER_ID);
    assert_eq!(user.claims().email.as_deref(), Some("owner@example.com"));
    let printed = format!("{user:?}");
    assert!(!printed.contains(&token), "Debug must not print the token");
}

#[tokio::test]
async fn unknown_kid_triggers_exactly_one_refetch() {
    let stub = JwksStub::start(jwks()).await;
    let v = verifier(config(Some(&stub.url)));
    v.verify(&es256(&es_key(), ES_KID, &user_claims()), NOW)
        .await
        .expect("valid");
    assert_eq!(stub.hits(), 1);

    // An unknown kid may mean the project rotated keys: look once.
    let unknown = es256(&es_key_2(), "made-up", &user_claims());
    assert_unauthorized(
        v.verify(&unknown, NOW + 1).await,
        "no key with kid \"made-up\"",
        "first unknown",
    );
    assert_eq!(stub.hits(), 2);

    // More made-up kids within a minute do not reach the auth server.
    for (i, kid) in ["made-up", "another", "and-another"]
        .into_iter()
        .enumerate()
    {
        let token = es256(&es_key_2(), kid, &user_claims());
        assert_unauthorized(
            v.verify(&token, NOW + 2 + i as i64).await,
            "no key with kid",
            kid,
        );
    }
    assert_eq!(stub.hits(), 2, "no refetch within 60s");
    // Known keys keep working meanwhile, without a fetch.
    v.verify(&rs256(RS_KID, &user_claims()), NOW + 30)
        .await
        .expect("valid");
    assert_eq!(stub.hits(), 2);

    // A minute later, an unknown kid may look again.
    assert_unauthorized(
        v.verify(&unknown, NOW + 61).await,
        "no key with kid",
        "after a minute",
    );
    assert_eq!(stub.hits(), 3);
}

#[tokio::test]
async fn rotated_in_key_is_found_by_a_refetch() {
    let stub = JwksStub::start(jwks()).await;
    let v = verifier(config(Some(&stub.url)));
    v.verify(&es256(&es_key(), ES_KID, &user_claims()), NOW)
        .await
        .expect("valid");

    let mut rotated = jwks();
    rotated["keys"]
        .as_array_mut()
        .expect("keys")
        .push(es_jwk(&es_key_2(), "es-key-2"));
    stub.serve(200, &rotated.to_string());
    v.verify(&es256(&es_key_2(), "es-key-2", &user_claims()), NOW + 5)
        .await
        .expect("new key");
    assert_eq!(stub.hits(), 2);
}

#[tokio::test]
async fn keys_are_refetched_after_ten_minutes() {
    let stub = JwksStub::start(jwks()).await;
    let v = verifier(config(Some(&stub.url)));
    let token = |iat: i64| {
        es256(
            &es_key(),
            ES_KID,
            &claims_with(json!({ "iat": iat, "exp": iat + 3600 })),
        )
    };
    v.verify(&token(NOW), NOW).await.expect("valid");
    v.verify(&token(NOW + 599), NOW + 599).await.expect("valid");
    assert_eq!(stub.hits(), 1);
    v.verify(&token(NOW + 600), NOW + 600).await.expect("valid");
    assert_eq!(stub.hits(), 2);
}

#[tokio::test]
async fn a_revoked_key_stops_working_once_the_jwks_is_refetched() {
    let stub = JwksStub::start(jwks()).await;
    let v = verifier(config(Some(&stub.url)));
    let token = es256(&es_key(), ES_KID, &user_claims());
    v.verify(&token, NOW).await.expect("valid");

    // The project revokes the ES256 key; a later fetch no longer has it.
    stub.serve(200, &json!({ "keys": [rs_jwk(RS_KID)] }).to_string());
    let other = es256(&es_key_2(), "es-key-2", &user_claims());
    assert_unauthorized(
        v.verify(&other, NOW + 60).await,
        "no key with kid",
        "unknown kid refetches",
    );
    assert_eq!(stub.hits(), 2);
    // The token verified a minute ago is not served from the cache.
    assert_unauthorized(
        v.verify(&token, NOW + 61).await,
        "no key with kid \"es-key-1\"",
        "revoked",
    );
}

#[tokio::test]
async fn jwks_that_cannot_be_fetched_is_503_not_401() {
    let stub = JwksStub::start(jwks()).await;
    let (dead, _socket) = dead_url();
    // (case, JWKS URL, what the stub answers there)
    type Case<'a> = (&'a str, String, Option<(u16, &'a str)>);
    let cases: Vec<Case<'_>> = vec![
        ("connection refused", dead, None),
        ("server error", stub.url.clone(), Some((500, "oops"))),
        ("not found", stub.url.clone(), Some((404, "{}"))),
        ("not a JWK set", stub.url.clone(), Some((200, "<html>"))),
    ];
    for (case, url, answer) in cases {
        if let Some((status, body)) = answer {
            stub.serve(status, body);
        }
        let v = verifier(config(Some(&url)));
        let result = v
            .verify(&es256(&es_key(), ES_KID, &user_claims()), NOW)
            .await;
        match result {
            Err(err @ Error::Unavailable { .. }) => {
                assert_eq!(err.status(), 503, "{case}");
                assert!(
                    err.to_response("r").header("retry-after").is_some(),
                    "{case}"
                );
            }
            other => panic!("{case}: expected 503, got {other:?}"),
        }
        // HS256 tokens do not need the JWKS and keep working.
        v.verify(&hs256(&user_claims()), NOW)
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
    }
}

#[tokio::test]
async fn a_jwks_server_that_never_answers_is_503_after_the_timeout() {
    // Accepts connections and then says nothing, like a hung auth server.
    let silent = edge_testing::server::silent().await;
    let mut cfg = config(Some(&format!("{}{JWKS_PATH}", silent.url())));
    cfg.jwks_timeout_ms = 200;
    let started = std::time::Instant::now();
    let result = verifier(cfg)
        .verify(&es256(&es_key(), ES_KID, &user_claims()), NOW)
        .await;
    match result {
        Err(err @ Error::Unavailable { .. }) => {
            assert!(
                reason(&err).contains("no complete answer within 200 ms"),
                "{}",
                reason(&err)
            );
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "bounded"
    );
}

#[tokio::test]
async fn jwks_outage_backs_off_then_recovers() {
    let stub = JwksStub::start(jwks()).await;
    stub.serve(503, "down");
    let v = verifier(config(Some(&stub.url)));
    let token = es256(&es_key(), ES_KID, &user_claims());
    let is_503 = |r: &Result<_, Error>| matches!(r, Err(Error::Unavailable { .. }));

    assert!(is_503(&v.verify(&token, NOW).await));
    assert!(
        is_503(&v.verify(&token, NOW + 4).await),
        "within the back-off: no fetch"
    );
    assert_eq!(stub.hits(), 1);

    stub.serve(200, &jwks().to_string());
    v.verify(&token, NOW + 5).await.expect("recovered");
    assert_eq!(stub.hits(), 2);
}

#[tokio::test]
async fn stale_keys_serve_while_a_refresh_fails() {
    let stub = JwksStub::start(jwks()).await;
    let v = verifier(config(Some(&stub.url)));
    v.verify(&es256(&es_key(), ES_KID, &user_claims()), NOW)
        .await
        .expect("valid");
    stub.serve(500, "down");
    let later = es256(&es_key(), ES_KID, &claims_with(json!({ "iat": NOW + 700 })));
    v.verify(&later, NOW + 700)
        .await
        .expect("stale key still verifies");
    assert_eq!(stub.hits(), 2, "the refresh was attempted");
}

#[tokio::test]
async fn malformed_input_is_401_and_never_panics() {
    let stub = JwksStub::start(jwks()).await;
    let v = verifier(config(Some(&stub.url)));
    let valid = hs256(&user_claims());
    let mut inputs: Vec<String> = vec![
        ".".into(),
        "..".into(),
        "...".into(),
        "a.b.c".into(),
        "=.=.=".into(),
        "\u{0}.\u{0}.\u{0}".into(),
        "é.é.é".into(),
        format!("{}..", b64(br#"{"alg":"HS256"}"#)),
        format!("{}..", b64(br#"{"alg":"ES256","kid":"es-key-1"}"#)),
        format!(
            "{}.{}.",
            b64(br#"{"alg":"RS256","kid":"rs-key-1"}"#),
            b64(b"{}")
        ),
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"HS256","cty":"cbor"}"#),
            b64(b"{}"),
            b64(b"x")
        ),
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"HS256","kid":7}"#),
            b64(b"{}"),
            b64(b"x")
        ),
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"ES256","kid":""}"#),
            b64(b"{}"),
            b64(&[0; 64])
        ),
    ];
    // Every prefix and every single-character corruption of a valid token.
    for cut in (0..valid.len()).step_by(7) {
        inputs.push(valid[..cut].to_owned());
    }
    for at in (0..valid.len()).step_by(5) {
        let mut bytes = valid.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        inputs.push(String::from_utf8(bytes).expect("ascii"));
    }
    for input in inputs {
        if input == valid {
            continue;
        }
        match v.verify(&input, NOW).await {
            Err(Error::Unauthorized { .. }) => {}
            other => panic!("{input:?}: expected 401, got {other:?}"),
        }
    }
}

/// Requests interleave on one isolate's thread (workerd runs one at a time
/// per thread, switching at awaits), all through one Verifier.
#[tokio::test]
async fn one_verifier_serves_concurrent_requests() {
    let stub = JwksStub::start(jwks()).await;
    let v = verifier(config(Some(&stub.url)));
    v.verify(&es256(&es_key(), ES_KID, &user_claims()), NOW)
        .await
        .expect("warm");
    let tokens: Vec<String> = (0..8)
        .map(|i| es256(&es_key(), ES_KID, &claims_with(json!({ "iat": NOW + i }))))
        .collect();
    let local = tokio::task::LocalSet::new();
    let v = std::rc::Rc::new(v);
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let v = std::rc::Rc::clone(&v);
            local.spawn_local(async move { v.verify(&token, NOW + 10).await })
        })
        .collect();
    local.await;
    for task in tasks {
        task.await.expect("join").expect("valid");
    }
    assert_eq!(stub.hits(), 1);
}

/// Issue 12: the JWKS answering a huge, slow, cut-short, malformed or
/// failed answer (the stack's Auth stand-in acting it out) is a bounded
/// 503, and no token passes. Seen failing before `edge-outbound`: the
/// 32 MB key set (valid JSON padded with whitespace) was read whole and
/// the token accepted.
#[tokio::test]
async fn a_jwks_failing_in_every_way_is_a_bounded_503() {
    use edge_testing::stubs::{self, Fault};
    let stub = stubs::auth(0).await.expect("auth stand-in");
    let now = chrono::Utc::now().timestamp();
    let claims =
        edge_testing::tokens::user_claims(edge_testing::DemoUser::Member, chrono::Utc::now());
    let token = edge_testing::tokens::mint_es256(&claims).expect("token");

    let mut cfg = config(Some(&format!("{}{}", stub.url(), stubs::JWKS_PATH)));
    cfg.jwks_timeout_ms = 500;
    verifier(cfg.clone())
        .verify(&token, now)
        .await
        .expect("the stand-in's normal answer verifies the token");

    // Every fault but a refused connection (a JWKS URL of its own).
    for fault in &Fault::ALL[1..] {
        cfg.jwks_url = Some(format!(
            "{}/fault/{}{}",
            stub.url(),
            fault.name(),
            stubs::JWKS_PATH
        ));
        let started = std::time::Instant::now();
        let result = verifier(cfg.clone()).verify(&token, now).await;
        assert!(
            matches!(result, Err(Error::Unavailable { .. })),
            "{}: {result:?}",
            fault.name()
        );
        assert!(
            started.elapsed() < std::time::Duration::from_millis(1500),
            "{}: {:?}",
            fault.name(),
            started.elapsed()
        );
    }
}
