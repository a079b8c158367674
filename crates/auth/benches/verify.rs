//! What checking a user's token costs on every request of send-email and
//! attachment-urls: a Supabase-shaped HS256 access token, verified first
//! (signature, claims, audience, expiry) and then again from the
//! verified-token cache, as a client's next request would be.
//! `cargo bench -p edge-auth`.
//!
//! ES256/RS256 are checked by WebCrypto inside workerd, not by this code,
//! so a native number for them would say nothing about production.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use edge_auth::{JwtConfig, JwtSecret, Verifier};
use edge_testing::clock::never;
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Header};
use serde_json::json;
use std::hint::black_box;

const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";
const NOW: i64 = 1_757_505_700;

fn verifier() -> Verifier {
    let config = JwtConfig {
        secret: Some(JwtSecret::new(SECRET).expect("secret")),
        jwks_url: None,
        audience: "authenticated".into(),
        issuer: None,
        leeway_secs: 30,
        jwks_timeout_ms: 5000,
    };
    Verifier::new(config, reqwest::Client::new(), never)
}

/// An access token as Supabase Auth issues it.
fn token() -> String {
    let claims = json!({
        "iss": "https://abc.supabase.co/auth/v1",
        "sub": "11111111-1111-4111-8111-111111111111",
        "aud": "authenticated", "exp": NOW + 3600, "iat": NOW,
        "email": "owner@example.com", "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"name": "Owner"},
        "role": "authenticated", "aal": "aal1",
        "amr": [{"method": "password", "timestamp": NOW}],
        "session_id": "44444444-4444-4444-8444-444444444444",
        "is_anonymous": false
    });
    Hs256
        .token(
            &Header::empty(),
            &jwt_compact::Claims::new(claims),
            &Hs256Key::new(SECRET.as_bytes()),
        )
        .expect("sign")
}

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let token = token();
    let mut group = c.benchmark_group("hs256 access token");
    group.bench_function("first request (verified)", |b| {
        b.iter_batched(
            verifier,
            |v| black_box(runtime.block_on(v.verify(&token, NOW)).expect("valid")),
            BatchSize::SmallInput,
        );
    });
    let warm = verifier();
    runtime.block_on(warm.verify(&token, NOW)).expect("valid");
    group.bench_function("next request (cached)", |b| {
        b.iter(|| black_box(runtime.block_on(warm.verify(&token, NOW)).expect("valid")));
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
