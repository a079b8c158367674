//! The JWT attack list, through the real wasm in workerd: HS256 checked by
//! jwt-compact inside the isolate, ES256 and RS256 by WebCrypto against the
//! Auth stand-in's JWKS (which also lists a symmetric key no verifier may
//! use). Every hostile token gets the same 401 problem+json on every user
//! route (send-email's `POST /emails`, attachment-urls' `POST
//! /attachments/sign` and `POST /attachments/upload-url`), and nothing is
//! written: no credits charged, no mail row, no call to the provider, no
//! attachment row, no signed URL. Each list starts with honest tokens that
//! get past authentication, so a route refusing everything cannot pass.
//!
//! Each case names the check it was seen failing without: break that check
//! in `crates/auth` on purpose, rebuild (`scripts/build-functions.sh
//! send-email attachment-urls`) and run `cargo test -p edge-e2e -- jwt::`.

use anyhow::{ensure, Context as _};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use edge_e2e::{ensure_eq, leaks, Reply, World};
use edge_stack::{tokens, DemoUser};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{Algorithm as _, AlgorithmSignature as _};
use serde_json::{json, Value};

/// send-email with no HS256 secret: a project on asymmetric keys only.
pub const ASYMMETRIC: &str = "send-email-asymmetric";
/// send-email with `JWT_ISSUER` set to what the stack's tokens carry.
pub const WITH_ISSUER: &str = "send-email-issuer";

/// The seeded attachment Acme's members may see, and the ticket it is on.
const SEEDED_ATTACHMENT: &str = "dddddddd-dddd-4ddd-8ddd-dddddddddddd";
const SEEDED_TICKET: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";

/// A user route, with a body that would write (or sign) if the token
/// were accepted.
struct Route {
    function: &'static str,
    path: &'static str,
    /// The path in openapi.yaml (variants are documented as their function).
    documented: &'static str,
    body: Value,
}

/// A fresh user the attacks claim to be, so anything written in their
/// name would show.
struct Victim {
    id: String,
    /// A support reply of theirs on Acme's ticket: the only kind of
    /// message they may attach files to.
    reply: String,
    claims: Value,
    subject: String,
    file_name: String,
    credits: i64,
}

impl Victim {
    /// A new `auth.users` row (the sign-up triggers give it a personal
    /// account, a profile and credits), made a member of Acme with a reply
    /// of their own on its ticket, so an accepted token could sign Acme's
    /// attachment and add one.
    async fn sign_up(world: &World) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().to_string();
        let reply = uuid::Uuid::new_v4().to_string();
        let email = format!("{}@example.com", &id[..8]);
        world
            .stack
            .psql(&format!(
                "insert into auth.users (instance_id, id, aud, role, email, raw_user_meta_data, created_at, updated_at) \
                 values ('00000000-0000-0000-0000-000000000000', '{id}', 'authenticated', 'authenticated', '{email}', '{{}}', now(), now()); \
                 insert into public.accounts_memberships (user_id, account_id, account_role, created_by, updated_by) \
                 values ('{id}', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'member', '{owner}', '{owner}'); \
                 insert into public.messages (id, ticket_id, author, author_account_id, content) \
                 values ('{reply}', '{SEEDED_TICKET}', 'support', '{id}', 'A reply to attach files to.'); \
                 insert into public.email_sender_settings (user_id, custom_content_allowed) values ('{id}', true)",
                owner = DemoUser::Owner.id()
            ))
            .await?;
        let mut claims = tokens::user_claims(DemoUser::Member, chrono::Utc::now());
        claims["sub"] = json!(id);
        claims["email"] = json!(email);
        claims["session_id"] = json!(uuid::Uuid::new_v4().to_string());
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let mut victim = Self {
            id,
            reply,
            claims,
            subject: format!("jwt attack {tag}"),
            file_name: format!("jwt-attack-{tag}.txt"),
            credits: 0,
        };
        victim.credits = victim.balance(world).await?.0;
        Ok(victim)
    }

    /// The victim's claims with some members replaced (`null` removes one).
    fn claims_with(&self, changes: Value) -> Value {
        let mut claims = self.claims.clone();
        for (name, value) in changes.as_object().into_iter().flatten() {
            match value {
                Value::Null => {
                    claims.as_object_mut().map(|c| c.remove(name));
                }
                value => claims[name] = value.clone(),
            }
        }
        claims
    }

    fn routes(&self) -> Vec<Route> {
        vec![
            Route {
                function: "send-email",
                path: "/emails",
                documented: "/send-email/emails",
                body: json!({"to": "ada@example.com", "subject": self.subject, "text": "Hello."}),
            },
            Route {
                function: "attachment-urls",
                path: "/attachments/sign",
                documented: "/attachment-urls/attachments/sign",
                body: json!({"ids": [SEEDED_ATTACHMENT]}),
            },
            Route {
                function: "attachment-urls",
                path: "/attachments/upload-url",
                documented: "/attachment-urls/attachments/upload-url",
                body: json!({"message_id": self.reply, "file_name": self.file_name,
                             "content_type": "text/plain", "size": 10}),
            },
        ]
    }

    /// The same mail body against another send-email instance.
    fn mail_route(&self, function: &'static str) -> Route {
        Route {
            function,
            ..self.routes().remove(0)
        }
    }

    async fn balance(&self, world: &World) -> anyhow::Result<(i64, i64)> {
        let out = world
            .stack
            .psql(&format!(
                "select p.credits, coalesce((select sum(amount) from public.credit_transactions t \
                 where t.user_id = p.id), 0) from public.profiles p where p.id = '{}'",
                self.id
            ))
            .await?;
        let (credits, ledger) = out
            .trim()
            .split_once('|')
            .with_context(|| format!("balance of {}: {out:?}", self.id))?;
        Ok((credits.parse()?, ledger.parse()?))
    }

    /// Nothing in the victim's name: credits and ledger as at sign-up, no
    /// mail row, nothing sent to the provider, no attachment row.
    async fn ensure_nothing_written(&self, world: &World) -> anyhow::Result<()> {
        ensure_eq!(
            self.balance(world).await?,
            (self.credits, self.credits),
            "credits and ledger untouched"
        );
        let count = |sql: String| async move {
            let out = world.stack.psql(&sql).await?;
            anyhow::Ok(out.trim().to_owned())
        };
        ensure_eq!(
            count(format!(
                "select count(*) from public.user_mails where user_id = '{}'",
                self.id
            ))
            .await?,
            "0",
            "no mail row"
        );
        ensure_eq!(
            count(format!(
                "select count(*) from public.message_attachments where file_name = '{}' or created_by = '{}'",
                self.file_name, self.id
            ))
            .await?,
            "0",
            "no attachment row"
        );
        let sent = world
            .stack
            .email()
            .map(|stub| stub.requests())
            .unwrap_or_default()
            .iter()
            .filter(|r| r["body"]["subject"] == self.subject.as_str())
            .count();
        ensure_eq!(sent, 0, "nothing reached the email provider");
        Ok(())
    }
}

async fn post(world: &World, route: &Route, token: &str, body: &Value) -> anyhow::Result<Reply> {
    world
        .post(route.function, route.path)
        .bearer(token)
        .json(body)
        .send()
        .await
}

/// `token` gets the one 401 every auth failure gets, as documented, twice:
///
/// - with the body `{}`, which the route refuses (422) right after
///   authentication and before any PostgREST call: so a 401 here is the
///   function's own verifier speaking. PostgREST verifies the forwarded
///   token again and would turn many forgeries into a 401 of its own
///   (`alg: none`, `nbf`...), hiding a verifier that let them in;
/// - with a body that would write, charge or sign, to see that nothing is.
async fn ensure_refused(
    world: &World,
    route: &Route,
    what: &str,
    token: &str,
) -> anyhow::Result<()> {
    // A hostile token is still something a client sent: it must not come
    // back either (a truncated real token is most of a credential). A bare
    // JOSE header is no credential: every HS256 token starts with the same
    // one, the Storage upload tokens in signed URLs too.
    if token.trim_end_matches('.').contains('.') {
        leaks::remember(format!("the token sent as \"{what}\""), token);
    }
    for (body, with) in [
        (&json!({}), "an empty body"),
        (&route.body, "a body that would write"),
    ] {
        let reply = post(world, route, token, body).await?;
        let place = format!("{what}, {} {} with {with}", route.function, route.path);
        reply.expect(401).with_context(|| place.clone())?;
        ensure_eq!(
            reply.media_type(),
            "application/problem+json",
            "{place}: media type"
        );
        ensure_eq!(
            reply.header("www-authenticate"),
            Some("Bearer"),
            "{place}: challenge"
        );
        let problem = reply.json()?;
        ensure_eq!(problem["status"], 401, "{place}: problem status");
        ensure_eq!(
            problem["detail"],
            "Missing or invalid credentials.",
            "{place}: the same words for every failure"
        );
        reply
            .documented(&world.openapi, "POST", route.documented)
            .with_context(|| place.clone())?;
    }
    Ok(())
}

/// `token` gets past authentication: the body `{}` is refused (422) after
/// it, with nothing written.
async fn ensure_admitted(
    world: &World,
    route: &Route,
    what: &str,
    token: &str,
) -> anyhow::Result<()> {
    let reply = post(world, route, token, &json!({})).await?;
    reply.expect(422).with_context(|| {
        format!(
            "{what} ({} {}) is let in, then its empty body refused",
            route.function, route.path
        )
    })?;
    Ok(())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload` with any header, for tokens no honest library makes.
fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// `header.payload.signature`, the signature an HMAC-SHA256 with `key`.
fn hmac_signed(key: &[u8], header: &Value, claims: &Value) -> String {
    let signed = unsigned(header, claims);
    let signature = Hs256.sign(&Hs256Key::new(key), signed.as_bytes());
    format!("{signed}.{}", b64(&signature.as_bytes()))
}

/// `token` with its signature's last character changed.
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last = if *last == b'A' { b'Q' } else { b'A' };
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn jwk_bytes(jwk: &Value, member: &str) -> anyhow::Result<Vec<u8>> {
    let text = jwk[member]
        .as_str()
        .with_context(|| format!("jwk {member}"))?;
    Ok(URL_SAFE_NO_PAD.decode(text)?)
}

/// The stack's public keys in every form a confused verifier might feed
/// to HMAC as its secret: as the JWKS publishes them, the whole JWKS, the
/// raw key bytes, and PEM.
async fn public_key_forms(world: &World) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let jwks_url = format!(
        "{}/auth/v1/.well-known/jwks.json",
        world.stack.auth().context("the Auth stand-in")?.url()
    );
    let jwks = Reply::read(world.http.get(&jwks_url).send().await?)
        .await?
        .body;
    let es = tokens::es256_jwk()?;
    let rs = tokens::rs256_jwk()?;
    let point = [vec![4], jwk_bytes(&es, "x")?, jwk_bytes(&es, "y")?].concat();
    // SubjectPublicKeyInfo for a P-256 key: the fixed DER prefix (id-ecPublicKey,
    // prime256v1, a 66-byte BIT STRING), then the uncompressed point.
    let spki_prefix = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let spki = [spki_prefix.as_slice(), &point].concat();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(&spki)
    );
    Ok(vec![
        ("the ES256 JWK".into(), es.to_string().into_bytes()),
        ("the RS256 JWK".into(), rs.to_string().into_bytes()),
        ("the whole JWKS".into(), jwks),
        ("the P-256 point".into(), point),
        ("the P-256 key's SPKI DER".into(), spki),
        ("the P-256 key's PEM".into(), pem.into_bytes()),
        ("the RSA modulus".into(), jwk_bytes(&rs, "n")?),
    ])
}

/// Forged and unsigned tokens: `alg: none`, HS256 signed with a public key
/// (key confusion), kids that point nowhere or at the wrong kind of key, and
/// the symmetric key the JWKS lists. On every user route, and on a
/// send-email that has no HS256 secret at all. Seen failing with `alg:
/// none` let through to the HS256 branch and accepted unsigned.
pub async fn forged_and_unsigned_tokens_are_401_and_write_nothing(
    world: &World,
) -> anyhow::Result<()> {
    let victim = Victim::sign_up(world).await?;
    let claims = &victim.claims;
    let routes = victim.routes();
    for route in &routes {
        ensure_admitted(world, route, "HS256", &world.stack.mint(claims)?).await?;
        ensure_admitted(world, route, "ES256", &tokens::mint_es256(claims)?).await?;
    }

    let hs = |alg: &str| json!({"alg": alg, "typ": "JWT"});
    let honest = world.stack.mint(claims)?;
    let honest_signature = honest.rsplit('.').next().unwrap_or_default().to_owned();
    let mut attacks: Vec<(String, String)> = vec![
        (
            "alg none".into(),
            format!("{}.", unsigned(&hs("none"), claims)),
        ),
        (
            "alg None".into(),
            format!("{}.", unsigned(&hs("None"), claims)),
        ),
        (
            "alg NONE".into(),
            format!("{}.", unsigned(&hs("NONE"), claims)),
        ),
        (
            "alg none with a valid HS256 signature kept".into(),
            format!("{}.{honest_signature}", unsigned(&hs("none"), claims)),
        ),
        (
            "no alg at all".into(),
            format!("{}.", unsigned(&json!({"typ": "JWT"}), claims)),
        ),
        (
            "alg HS512".into(),
            hmac_signed(world.stack.jwt_secret().as_bytes(), &hs("HS512"), claims),
        ),
        (
            "HS256 with another secret".into(),
            hmac_signed(
                b"another-secret-that-is-long-enough-for-hs256",
                &hs("HS256"),
                claims,
            ),
        ),
    ];
    for (form, key) in public_key_forms(world).await? {
        for kid in [tokens::ES256_KID, tokens::RS256_KID] {
            attacks.push((
                format!("HS256 signed with {form}, kid {kid}"),
                hmac_signed(
                    &key,
                    &json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
                    claims,
                ),
            ));
        }
        attacks.push((
            format!("HS256 signed with {form}, no kid"),
            hmac_signed(&key, &hs("HS256"), claims),
        ));
        attacks.push((
            format!("ES256 header, HMAC by {form}"),
            hmac_signed(
                &key,
                &json!({"alg": "ES256", "kid": tokens::ES256_KID}),
                claims,
            ),
        ));
        attacks.push((
            format!("RS256 header, HMAC by {form}"),
            hmac_signed(
                &key,
                &json!({"alg": "RS256", "kid": tokens::RS256_KID}),
                claims,
            ),
        ));
    }
    // The symmetric key the JWKS lists, under its kid and without.
    let oct = tokens::OCT_KEY;
    for alg in ["HS256", "ES256", "RS256"] {
        attacks.push((
            format!("{alg} header, kid of the JWKS's oct key, HMAC by it"),
            hmac_signed(
                oct,
                &json!({"alg": alg, "typ": "JWT", "kid": tokens::OCT_KID}),
                claims,
            ),
        ));
    }
    attacks.push((
        "HS256 by the JWKS's oct key, no kid".into(),
        hmac_signed(oct, &hs("HS256"), claims),
    ));
    // A signature as long as ES256's, made with the oct key: gets past the
    // length check, so only the key binding can stop it.
    let signed = unsigned(&json!({"alg": "ES256", "kid": tokens::OCT_KID}), claims);
    let mac = Hs256.sign(&Hs256Key::new(oct), signed.as_bytes());
    let mac = mac.as_bytes();
    attacks.push((
        "ES256 header, kid of the oct key, a 64-byte signature by it".into(),
        format!("{signed}.{}", b64(&[&mac[..], &mac[..]].concat())),
    ));
    // Kids that point nowhere, or at the other algorithm's key.
    for kid in ["nowhere", "", "../../../../etc/passwd", "edge-stack-es256 "] {
        attacks.push((
            format!("ES256, kid {kid:?}"),
            tokens::mint_es256_as(kid, claims)?,
        ));
        attacks.push((
            format!("RS256, kid {kid:?}"),
            tokens::mint_rs256_as(kid, claims)?,
        ));
    }
    attacks.push((
        "ES256 signed by the stack's key, kid of its RS256 key".into(),
        tokens::mint_es256_as(tokens::RS256_KID, claims)?,
    ));
    attacks.push((
        "RS256 signed by the stack's key, kid of its ES256 key".into(),
        tokens::mint_rs256_as(tokens::ES256_KID, claims)?,
    ));
    attacks.push(("ES256 without a kid".into(), {
        let es = tokens::mint_es256(claims)?;
        let (_, rest) = es.split_once('.').context("a JWT")?;
        format!("{}.{rest}", b64(br#"{"alg":"ES256","typ":"JWT"}"#))
    }));
    attacks.push((
        "ES256, tampered signature".into(),
        tampered(&tokens::mint_es256(claims)?),
    ));
    attacks.push((
        "RS256, tampered signature".into(),
        tampered(&tokens::mint_rs256(claims)?),
    ));
    attacks.push((
        "RS256, a 32-byte signature".into(),
        format!(
            "{}.{}",
            unsigned(&json!({"alg": "RS256", "kid": tokens::RS256_KID}), claims),
            b64(&[7; 32])
        ),
    ));
    attacks.push((
        "RS256, a 512-byte signature".into(),
        format!(
            "{}.{}",
            unsigned(&json!({"alg": "RS256", "kid": tokens::RS256_KID}), claims),
            b64(&[7; 512])
        ),
    ));
    attacks.push((
        "ES256, 64 zero bytes".into(),
        format!(
            "{}.{}",
            unsigned(&json!({"alg": "ES256", "kid": tokens::ES256_KID}), claims),
            b64(&[0; 64])
        ),
    ));

    let asymmetric = victim.mail_route(ASYMMETRIC);
    // The asymmetric-only configuration lets honest ES256/RS256 in, and
    // refuses HS256 even when signed with the project's old secret.
    ensure_admitted(
        world,
        &asymmetric,
        "ES256 without a secret",
        &tokens::mint_es256(claims)?,
    )
    .await?;
    ensure_admitted(
        world,
        &asymmetric,
        "RS256 without a secret",
        &tokens::mint_rs256(claims)?,
    )
    .await?;
    ensure_refused(
        world,
        &asymmetric,
        "HS256 without a secret configured",
        &honest,
    )
    .await?;
    for (what, token) in &attacks {
        for route in routes.iter().chain([&asymmetric]) {
            ensure_refused(world, route, what, token).await?;
        }
    }
    victim.ensure_nothing_written(world).await
}

/// Honest signatures over claims that do not fit: expired, not yet valid,
/// for another audience, without the claims that are required. Through
/// HS256 in the isolate and ES256/RS256 through WebCrypto alike. Seen
/// failing with the `nbf` check skipped.
pub async fn tokens_out_of_time_or_for_others_are_401_and_write_nothing(
    world: &World,
) -> anyhow::Result<()> {
    let victim = Victim::sign_up(world).await?;
    let now = chrono::Utc::now().timestamp();
    let changes = [
        (
            "expired an hour ago",
            json!({"exp": now - 3600, "iat": now - 7200}),
        ),
        (
            "expired a minute ago, past the 30 s leeway",
            json!({"exp": now - 60}),
        ),
        ("no exp", json!({"exp": null})),
        ("exp not a number", json!({"exp": "tomorrow"})),
        (
            "not valid for another hour (nbf)",
            json!({"nbf": now + 3600}),
        ),
        (
            "not valid for another minute (nbf)",
            json!({"nbf": now + 90}),
        ),
        ("aud of another service", json!({"aud": "some-other-api"})),
        ("aud a list without ours", json!({"aud": ["a", "b"]})),
        ("aud in other case", json!({"aud": "Authenticated"})),
        ("no aud", json!({"aud": null})),
        ("sub not a user id", json!({"sub": "admin"})),
        ("no sub", json!({"sub": null})),
    ];
    let routes = victim.routes();
    for route in &routes {
        ensure_admitted(
            world,
            route,
            "the victim's RS256 token",
            &tokens::mint_rs256(&victim.claims)?,
        )
        .await?;
    }
    for (what, change) in changes {
        let claims = victim.claims_with(change);
        for (alg, token) in [
            ("HS256", world.stack.mint(&claims)?),
            ("ES256", tokens::mint_es256(&claims)?),
            ("RS256", tokens::mint_rs256(&claims)?),
        ] {
            for route in &routes {
                ensure_refused(world, route, &format!("{alg} {what}"), &token).await?;
            }
        }
    }
    victim.ensure_nothing_written(world).await
}

/// With `JWT_ISSUER` configured, `iss` must be exactly it. Seen failing
/// with the issuer check skipped.
pub async fn a_wrong_issuer_is_401_where_one_is_configured(world: &World) -> anyhow::Result<()> {
    let victim = Victim::sign_up(world).await?;
    let route = victim.mail_route(WITH_ISSUER);
    ensure_eq!(
        victim.claims["iss"],
        tokens::USER_TOKEN_ISSUER,
        "the stack's issuer"
    );
    ensure_admitted(
        world,
        &route,
        "the right iss, HS256",
        &world.stack.mint(&victim.claims)?,
    )
    .await?;
    ensure_admitted(
        world,
        &route,
        "the right iss, RS256",
        &tokens::mint_rs256(&victim.claims)?,
    )
    .await?;
    let issuer = tokens::USER_TOKEN_ISSUER;
    for (what, iss) in [
        (
            "another project's issuer",
            json!("https://abcdefghijklmnop.supabase.co/auth/v1"),
        ),
        ("a trailing slash", json!(format!("{issuer}/"))),
        ("upper case", json!(issuer.to_uppercase())),
        ("a prefix of it", json!(issuer.trim_end_matches("/v1"))),
        (
            "it with more after",
            json!(format!("{issuer}.evil.example")),
        ),
        ("a list holding it", json!([issuer])),
        ("no iss", Value::Null),
    ] {
        let claims = victim.claims_with(json!({"iss": iss}));
        ensure_refused(
            world,
            &route,
            &format!("HS256, iss {what}"),
            &world.stack.mint(&claims)?,
        )
        .await?;
        ensure_refused(
            world,
            &route,
            &format!("RS256, iss {what}"),
            &tokens::mint_rs256(&claims)?,
        )
        .await?;
    }
    victim.ensure_nothing_written(world).await
}

/// Properly signed tokens that are not a person's: `role: service_role`
/// in a user's token must not act as the service, API keys are not user
/// tokens, and anonymous sign-ins are refused where a real account is
/// needed (every user route here). Seen failing with `Policy::User`'s
/// anonymous check skipped, and again with its role check skipped.
pub async fn service_role_and_anonymous_tokens_never_pass_as_users(
    world: &World,
) -> anyhow::Result<()> {
    let victim = Victim::sign_up(world).await?;
    let changes = [
        (
            "role service_role in a user's token",
            json!({"role": "service_role"}),
        ),
        ("role supabase_admin", json!({"role": "supabase_admin"})),
        ("role postgres", json!({"role": "postgres"})),
        ("role anon", json!({"role": "anon"})),
        ("no role", json!({"role": null})),
        (
            "an anonymous sign-in",
            json!({"is_anonymous": true, "email": "", "amr": [{"method": "anonymous", "timestamp": 1}]}),
        ),
    ];
    let routes = victim.routes();
    for (what, change) in changes {
        let claims = victim.claims_with(change);
        for (alg, token) in [
            ("HS256", world.stack.mint(&claims)?),
            ("ES256", tokens::mint_es256(&claims)?),
            ("RS256", tokens::mint_rs256(&claims)?),
        ] {
            for route in &routes {
                ensure_refused(world, route, &format!("{alg}, {what}"), &token).await?;
            }
        }
    }
    for route in &routes {
        ensure_refused(world, route, "the service key", &world.stack.service_key()).await?;
        ensure_refused(world, route, "the anon key", &world.stack.anon_key()).await?;
    }
    victim.ensure_nothing_written(world).await
}

/// Bytes that are not a token at all: cut short, far too long, or not
/// base64url. Seen failing with the 16 KiB cap on tokens lifted (the
/// 20 kB token, properly signed, was then let in).
pub async fn truncated_huge_and_non_base64_tokens_are_401(world: &World) -> anyhow::Result<()> {
    let victim = Victim::sign_up(world).await?;
    let routes = victim.routes();
    let hs = world.stack.mint(&victim.claims)?;
    let es = tokens::mint_es256(&victim.claims)?;
    let rs = tokens::mint_rs256(&victim.claims)?;
    let mut attacks: Vec<(String, String)> = Vec::new();
    for (alg, token) in [("HS256", &hs), ("ES256", &es), ("RS256", &rs)] {
        let (signed, _) = token.rsplit_once('.').context("a JWT")?;
        let header = token.split('.').next().unwrap_or_default();
        for (what, cut) in [
            (
                "without its last character",
                token[..token.len() - 1].to_owned(),
            ),
            ("without its signature", format!("{signed}.")),
            ("without the signature's dot", signed.to_owned()),
            ("cut in half", token[..token.len() / 2].to_owned()),
            ("only its header", header.to_owned()),
            ("its header and a dot", format!("{header}.")),
            ("with a fourth segment", format!("{token}.{}", b64(b"more"))),
            (
                "its payload dropped",
                format!("{header}..{}", token.rsplit('.').next().unwrap_or_default()),
            ),
        ] {
            attacks.push((format!("{alg} {what}"), cut));
        }
    }
    let payload = hs.split('.').nth(1).unwrap_or_default();
    let signature = hs.rsplit('.').next().unwrap_or_default();
    let header = hs.split('.').next().unwrap_or_default();
    attacks.extend([
        (
            "a header of '!'".to_owned(),
            format!("!!!!.{payload}.{signature}"),
        ),
        (
            "a payload with '*'".to_owned(),
            format!("{header}.{payload}*.{signature}"),
        ),
        (
            "a signature with '$'".to_owned(),
            format!("{header}.{payload}.${signature}"),
        ),
        (
            "standard base64 ('+', '/', '=')".to_owned(),
            format!(
                "{}.{}.{}",
                STANDARD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
                STANDARD.encode(victim.claims.to_string()),
                STANDARD.encode([0xfb; 32])
            ),
        ),
        (
            "padding on every segment".to_owned(),
            format!("{header}==.{payload}==.{signature}=="),
        ),
        (
            "a header that is not JSON".to_owned(),
            format!("{}.{payload}.{signature}", b64(b"not json")),
        ),
        (
            "a payload that is not JSON".to_owned(),
            hmac_signed(
                world.stack.jwt_secret().as_bytes(),
                &json!({"alg": "HS256"}),
                &json!("just a string"),
            ),
        ),
        (
            "a header that is a JSON array".to_owned(),
            format!("{}.{payload}.{signature}", b64(b"[\"HS256\"]")),
        ),
        (
            "non-ASCII bytes".to_owned(),
            format!("{header}.{payload}é.{signature}"),
        ),
        ("only dots".to_owned(), "..".to_owned()),
        (
            "three empty segments and more dots".to_owned(),
            "....".to_owned(),
        ),
        ("a word".to_owned(), "token".to_owned()),
        (
            "an sb_secret_ API key".to_owned(),
            "sb_secret_0123456789abcdefghijklmnopqrstuv".to_owned(),
        ),
        // Past the verifier's 16 KiB cap, and under the runtime's limit
        // on a request's head (see below): these reach the function.
        (
            "a 20 kB token".to_owned(),
            hmac_signed(
                world.stack.jwt_secret().as_bytes(),
                &json!({"alg": "HS256", "typ": "JWT"}),
                &victim.claims_with(json!({"user_metadata": {"pad": "x".repeat(20_000)}})),
            ),
        ),
        (
            "a 100 kB token".to_owned(),
            hmac_signed(
                world.stack.jwt_secret().as_bytes(),
                &json!({"alg": "HS256", "typ": "JWT"}),
                &victim.claims_with(json!({"user_metadata": {"pad": "x".repeat(75_000)}})),
            ),
        ),
    ]);
    for (what, token) in &attacks {
        for route in &routes {
            ensure_refused(world, route, what, token).await?;
        }
    }

    // A 1 MB token, properly signed, never reaches the function: workerd
    // refuses a request head that big itself (measured: somewhere between
    // 0.5 and 1 MB) with `431 Request Header Fields Too Large` and closes
    // the connection, as Cloudflare's edge does past its own header limit.
    // So: a 4xx, nothing written, and the function keeps serving.
    let huge = hmac_signed(
        world.stack.jwt_secret().as_bytes(),
        &json!({"alg": "HS256", "typ": "JWT"}),
        &victim.claims_with(json!({"user_metadata": {"pad": "x".repeat(1 << 20)}})),
    );
    ensure!(huge.len() > 1 << 20, "a 1 MB token");
    for route in &routes {
        let status = raw_post_status(world, route, &huge).await?;
        ensure!(
            (400..500).contains(&status),
            "a 1 MB token, {} {}: {status}",
            route.function,
            route.path
        );
        ensure_refused(
            world,
            route,
            "a normal attack right after the 1 MB token",
            &tampered(&hs),
        )
        .await?;
    }
    victim.ensure_nothing_written(world).await
}

/// The status line's code for a POST with `token` as its bearer, sent on
/// a raw connection: the server may answer and close before it has read
/// the whole request, which an HTTP client reports as a broken pipe
/// instead of the answer.
async fn raw_post_status(world: &World, route: &Route, token: &str) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let base = world.function(route.function);
    let address = base.trim_start_matches("http://");
    let body = route.body.to_string();
    let request = format!(
        "POST {} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        route.path,
        body.len()
    );
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // Refused midway is the expected outcome, not an error.
        let _ = writer.write_all(request.as_bytes()).await;
        let _ = writer.shutdown().await;
    });
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reader.read_to_end(&mut answer),
    )
    .await
    .context("no answer within 10 s")??;
    writing.abort();
    let head = String::from_utf8_lossy(&answer);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| {
            format!(
                "no status line in {:?}",
                head.chars().take(200).collect::<String>()
            )
        })?;
    Ok(status)
}

/// RS256 end to end, as a project with an RSA signing key issues tokens:
/// WebCrypto inside workerd verifies it against the JWKS, then PostgREST
/// verifies it again and runs the caller's SQL under their RLS. Seen
/// failing with WebCrypto asked for RSASSA with SHA-384 instead of SHA-256.
pub async fn rs256_tokens_are_verified_through_webcrypto_end_to_end(
    world: &World,
) -> anyhow::Result<()> {
    let victim = Victim::sign_up(world).await?;
    let token = tokens::mint_rs256(&victim.claims)?;
    let routes = victim.routes();

    // A real send, charged to the RS256 caller by reserve_email as them.
    let sent = post(world, &routes[0], &token, &routes[0].body).await?;
    sent.expect(201).context("RS256 send")?.documented(
        &world.openapi,
        "POST",
        routes[0].documented,
    )?;
    let used = sent.json()?["credits_used"]
        .as_i64()
        .context("credits_used")?;
    ensure_eq!(
        victim.balance(world).await?,
        (victim.credits - used, victim.credits - used),
        "charged once, balance = ledger"
    );

    // The caller's RLS decides what attachment-urls signs and inserts.
    let signed = post(world, &routes[1], &token, &routes[1].body).await?;
    signed.expect(200).context("RS256 sign")?;
    ensure!(
        signed.json()?["urls"][0]["url"].is_string(),
        "a URL for Acme's attachment: {}",
        signed.text()
    );
    let upload = post(world, &routes[2], &token, &routes[2].body).await?;
    upload.expect(201).context("RS256 upload-url")?;
    let created_by = world
        .stack
        .psql(&format!(
            "select created_by from public.message_attachments where file_name = '{}'",
            victim.file_name
        ))
        .await?;
    ensure_eq!(
        created_by.trim(),
        victim.id,
        "the row is the RS256 caller's"
    );

    for route in &routes {
        ensure_refused(world, route, "RS256, tampered", &tampered(&token)).await?;
    }
    let fetched = world
        .stack
        .auth()
        .map(|a| a.requests().len())
        .unwrap_or_default();
    ensure!(fetched >= 1, "the functions fetched the JWKS");
    Ok(())
}
