//! The text bindings each served function gets, and which of them hold
//! secrets.
//!
//! A function's bindings come in layers, each later one overriding the
//! ones before it:
//!
//! 1. what the local Supabase project gives every function
//!    ([`supabase`]: its URLs, keys and JWT settings, and the demo page's
//!    origin);
//! 2. the function's own local settings, declared beside it in
//!    `functions/<name>/Cargo.toml` ([`LocalSettings`]);
//! 3. the caller's, for every function ([`StackOptions::bindings`]), then a
//!    variant's own ([`Variant::bindings`]).
//!
//! The stack knows no function by name: a new function declares its
//! settings and its dev port there and is served. In every layer's values,
//! placeholders stand for what is known only once the stack runs
//! ([`Placeholders`]).
//!
//! [`StackOptions::bindings`]: crate::StackOptions::bindings
//! [`Variant::bindings`]: crate::Variant::bindings

use std::{collections::BTreeMap, io::ErrorKind, path::Path};

use anyhow::Context as _;
use serde::Deserialize;

use crate::{s3, stand_ins::StandIns, stubs, tokens, workerd::Function};

/// The secret local Storage tokens are signed with (attachment-urls'
/// `STORAGE_JWT_SECRET`); like the demo JWT secret, public and local only.
pub const STORAGE_JWT_SECRET: &str = "local-storage-secret-at-least-32-characters";

/// The webhook signing secret billing-webhook gets locally for `provider`
/// (one per provider, from its row in `edge_billing::providers`); tests
/// sign deliveries with it. Public and local only, like the demo JWT secret.
pub fn webhook_secret(provider: edge_billing::event::Provider) -> String {
    format!("local-{}-webhook-secret", provider.spec().slug)
}

/// send-email's webhook credentials: Resend's (Svix) signing secret, in its
/// `whsec_<base64>` form (the key is `local-resend-webhook-signing-key`),
/// and the basic auth set on Postmark's webhook. Public and local only.
pub const RESEND_WEBHOOK_SECRET: &str = "whsec_bG9jYWwtcmVzZW5kLXdlYmhvb2stc2lnbmluZy1rZXk=";
pub const POSTMARK_WEBHOOK_USER: &str = "postmark-webhook";
pub const POSTMARK_WEBHOOK_PASSWORD: &str = "local-postmark-webhook-password";

/// The bindings that hold secrets (the README's configuration table, kind
/// "secret"), besides each billing provider's: whatever else a function is
/// given is public. See [`is_secret_binding`].
pub const SECRET_BINDINGS: [&str; 8] = [
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_JWT_SECRET",
    "EMAIL_API_KEY",
    "STORAGE_JWT_SECRET",
    "S3_SECRET_ACCESS_KEY",
    "RESEND_WEBHOOK_SECRET",
    "POSTMARK_WEBHOOK_PASSWORD",
    "CAPTCHA_SECRET",
];

/// Whether a binding holds a secret: one of [`SECRET_BINDINGS`] or a
/// billing provider's signing secret.
pub fn is_secret_binding(name: &str) -> bool {
    SECRET_BINDINGS.contains(&name)
        || edge_billing::providers::PROVIDERS
            .iter()
            .any(|spec| spec.secret_var == name)
}

/// A function's local settings: `[package.metadata.edge-stack]` in
/// `functions/<name>/Cargo.toml`.
///
/// ```toml
/// [package.metadata.edge-stack]
/// dev-port = 8789
///
/// [package.metadata.edge-stack.bindings]
/// EMAIL_API_URL = "{email}"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct LocalSettings {
    /// The port `stack up` (`scripts/dev`) serves it on, which bookmarks,
    /// the README and webhook forwarding (`stripe listen`) rely on.
    pub(crate) dev_port: Option<u16>,
    /// Text bindings on top of [`supabase`]'s; values may hold
    /// placeholders ([`Placeholders`]).
    #[serde(default)]
    pub(crate) bindings: BTreeMap<String, String>,
    /// Also every billing provider's signing secret, each with its local
    /// value ([`webhook_secret`]): one binding per row of
    /// `edge_billing::providers::PROVIDERS`, so a new provider needs no
    /// new line here.
    #[serde(default)]
    pub(crate) billing_webhook_secrets: bool,
}

impl LocalSettings {
    /// `function`'s settings, read from `root`. A build with no crate
    /// beside it (the stack's own test fixtures) has none of its own.
    pub(crate) fn read(root: &Path, function: &str) -> anyhow::Result<Self> {
        #[derive(Deserialize)]
        struct Manifest {
            package: Package,
        }
        #[derive(Deserialize)]
        struct Package {
            #[serde(default)]
            metadata: Metadata,
        }
        #[derive(Default, Deserialize)]
        struct Metadata {
            #[serde(default, rename = "edge-stack")]
            edge_stack: LocalSettings,
        }

        let path = root.join("functions").join(function).join("Cargo.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("{}: [package.metadata.edge-stack]", path.display()))?;
        Ok(manifest.package.metadata.edge_stack)
    }

    /// The bindings these settings add, before placeholders are resolved.
    fn templates(&self) -> Vec<(String, String)> {
        let providers = edge_billing::providers::PROVIDERS
            .iter()
            .filter(|_| self.billing_webhook_secrets)
            .map(|spec| (spec.secret_var.to_owned(), webhook_secret(spec.provider)));
        self.bindings
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .chain(providers)
            .collect()
    }
}

/// What the local Supabase project gives every function, before
/// placeholders are resolved.
///
/// No gateway runs here, so the "project URL" is PostgREST's too; code that
/// talks to PostgREST should prefer `POSTGREST_URL`, which has no
/// `/rest/v1` prefix locally. The demo page (http://localhost:3000) may
/// call every function from a browser, unless a function's own settings
/// say otherwise.
fn supabase() -> Vec<(String, String)> {
    [
        ("SUPABASE_URL", "{postgrest}".to_owned()),
        ("POSTGREST_URL", "{postgrest}".to_owned()),
        ("SUPABASE_ANON_KEY", "{anon-key}".to_owned()),
        ("SUPABASE_SERVICE_ROLE_KEY", "{service-key}".to_owned()),
        ("SUPABASE_JWT_SECRET", "{jwt-secret}".to_owned()),
        ("JWT_AUDIENCE", "authenticated".to_owned()),
        ("SUPABASE_JWKS_URL", format!("{{auth}}{}", stubs::JWKS_PATH)),
        ("CORS_ALLOWED_ORIGINS", "http://localhost:3000".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// What each placeholder in a binding's value stands for on a running
/// stack:
///
/// | placeholder | value |
/// |---|---|
/// | `{postgrest}` | PostgREST's URL |
/// | `{anon-key}`, `{service-key}`, `{jwt-secret}` | the stack's API keys and HS256 secret |
/// | `{captcha}`, `{email}`, `{auth}`, `{storage}` | those stand-ins' base URLs ([`stubs`]) |
/// | `{refused}` | a local URL whose connections are refused ([`stubs::refused_url`]) |
/// | `{captcha.secret}`, `{captcha.hostname}` | the secret the captcha stand-in expects and the hostname it reports |
/// | `{email.api-key}` | the key the email stand-in expects |
/// | `{s3}`, `{s3.region}`, `{s3.bucket}`, `{s3.access-key-id}`, `{s3.secret-access-key}`, `{s3.path-style}` | the S3-compatible store's endpoint and settings ([`s3`]) |
/// | `{storage-jwt-secret}` | [`STORAGE_JWT_SECRET`] |
/// | `{resend-webhook-secret}`, `{postmark-webhook-user}`, `{postmark-webhook-password}` | [`RESEND_WEBHOOK_SECRET`], [`POSTMARK_WEBHOOK_USER`], [`POSTMARK_WEBHOOK_PASSWORD`] |
///
/// A stand-in that is not running (the S3 store unless asked for) stands
/// for nothing: a binding naming it is left out.
pub(crate) struct Placeholders(Vec<(&'static str, Option<String>)>);

impl Placeholders {
    pub(crate) fn new(postgrest_url: &str, jwt_secret: &str, stand_ins: &StandIns) -> Self {
        let url = |stub: Option<&stubs::Stub>| stub.map(|s| s.url().to_owned());
        let with = |stub: Option<&stubs::Stub>, value: &str| stub.map(|_| value.to_owned());
        let s3 = stand_ins.s3.as_ref();
        let with_s3 = |value: &str| s3.map(|_| value.to_owned());
        Self(vec![
            ("{postgrest}", Some(postgrest_url.to_owned())),
            ("{anon-key}", Some(tokens::anon_key(jwt_secret))),
            ("{service-key}", Some(tokens::service_key(jwt_secret))),
            ("{jwt-secret}", Some(jwt_secret.to_owned())),
            ("{captcha}", url(stand_ins.captcha.as_ref())),
            ("{email}", url(stand_ins.email.as_ref())),
            ("{auth}", url(stand_ins.auth.as_ref())),
            ("{storage}", url(stand_ins.storage.as_ref())),
            (
                "{refused}",
                stand_ins.refused.as_ref().map(|(url, _)| url.clone()),
            ),
            (
                "{captcha.secret}",
                with(stand_ins.captcha.as_ref(), stubs::CAPTCHA_SECRET),
            ),
            (
                "{captcha.hostname}",
                with(stand_ins.captcha.as_ref(), stubs::CAPTCHA_HOSTNAME),
            ),
            (
                "{email.api-key}",
                with(stand_ins.email.as_ref(), stubs::EMAIL_API_KEY),
            ),
            ("{s3}", s3.map(|s3| s3.url().to_owned())),
            ("{s3.region}", with_s3(s3::S3_REGION)),
            ("{s3.bucket}", with_s3(s3::S3_BUCKET)),
            ("{s3.access-key-id}", with_s3(s3::S3_ACCESS_KEY_ID)),
            ("{s3.secret-access-key}", with_s3(s3::S3_SECRET_ACCESS_KEY)),
            // s3s-fs on 127.0.0.1 has no bucket host names to serve.
            ("{s3.path-style}", with_s3("true")),
            ("{storage-jwt-secret}", Some(STORAGE_JWT_SECRET.to_owned())),
            (
                "{resend-webhook-secret}",
                Some(RESEND_WEBHOOK_SECRET.to_owned()),
            ),
            (
                "{postmark-webhook-user}",
                Some(POSTMARK_WEBHOOK_USER.to_owned()),
            ),
            (
                "{postmark-webhook-password}",
                Some(POSTMARK_WEBHOOK_PASSWORD.to_owned()),
            ),
        ])
    }

    /// `value` with every placeholder replaced; `None` when one stands for
    /// a stand-in that is not running.
    pub(crate) fn resolve(&self, value: &str) -> Option<String> {
        let mut value = value.to_owned();
        for (name, to) in &self.0 {
            if value.contains(name) {
                value = value.replace(name, to.as_deref()?);
            }
        }
        Some(value)
    }
}

/// One function's bindings: [`supabase`]'s, then `settings`', then each of
/// `extra` in turn (the caller's, a variant's), later entries overriding
/// earlier ones of the same name and new names appended; placeholders
/// resolved, and bindings naming a stand-in that is not running left out.
pub(crate) fn function_bindings(
    placeholders: &Placeholders,
    settings: &LocalSettings,
    extra: &[&[(String, String)]],
) -> Vec<(String, String)> {
    let mut bindings: Vec<(String, String)> = Vec::new();
    let layers = [supabase(), settings.templates()];
    let all = layers
        .iter()
        .map(Vec::as_slice)
        .chain(extra.iter().copied())
        .flatten();
    for (name, template) in all {
        let Some(value) = placeholders.resolve(template) else {
            continue;
        };
        match bindings.iter_mut().find(|(k, _)| k == name) {
            Some(existing) => existing.1 = value,
            None => bindings.push((name.clone(), value)),
        }
    }
    bindings
}

/// The values of the secret bindings the functions were given, each once.
pub(crate) fn configured_secrets(functions: &[Function]) -> Vec<(String, String)> {
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (name, value) in functions.iter().flat_map(|f| &f.bindings) {
        if !is_secret_binding(name) {
            continue;
        }
        // Webhook secrets are comma-separated while being rotated; a JWT or
        // API key has no commas, so splitting them all is harmless.
        for one in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            if !secrets.iter().any(|(_, v)| v == one) {
                secrets.push((name.clone(), one.to_owned()));
            }
        }
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{workerd, DEMO_JWT_SECRET};

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn placeholders() -> Placeholders {
        Placeholders::new("http://127.0.0.1:1", DEMO_JWT_SECRET, &StandIns::none())
    }

    fn get<'a>(bindings: &'a [(String, String)], name: &str) -> Option<&'a str> {
        bindings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn extra_bindings_override_defaults_and_append() {
        let extra = owned(&[
            ("JWT_AUDIENCE", "other"),
            ("CAPTCHA_VERIFY_URL", "http://127.0.0.1:9/"),
        ]);
        let bindings = function_bindings(&placeholders(), &LocalSettings::default(), &[&extra]);
        assert_eq!(get(&bindings, "JWT_AUDIENCE"), Some("other"));
        assert_eq!(
            get(&bindings, "CAPTCHA_VERIFY_URL"),
            Some("http://127.0.0.1:9/")
        );
        assert_eq!(get(&bindings, "POSTGREST_URL"), Some("http://127.0.0.1:1"));
        assert_eq!(
            bindings.iter().filter(|(k, _)| k == "JWT_AUDIENCE").count(),
            1
        );
    }

    #[test]
    fn a_functions_settings_override_supabases_and_the_callers_override_both() {
        let settings = LocalSettings {
            dev_port: None,
            bindings: owned(&[("CORS_ALLOWED_ORIGINS", ""), ("MODE", "local")])
                .into_iter()
                .collect(),
            billing_webhook_secrets: false,
        };
        let callers = owned(&[("MODE", "test")]);
        let bindings = function_bindings(&placeholders(), &settings, &[&callers]);
        assert_eq!(get(&bindings, "CORS_ALLOWED_ORIGINS"), Some(""));
        assert_eq!(get(&bindings, "MODE"), Some("test"));
    }

    #[test]
    fn placeholders_resolve_and_absent_stand_ins_leave_their_bindings_out() {
        let settings = LocalSettings {
            bindings: owned(&[
                ("KEY", "{service-key}"),
                ("AT", "{postgrest}/x"),
                ("S3_ENDPOINT", "{s3}"),
                ("S3_FORCE_PATH_STYLE", "{s3.path-style}"),
                ("SECRET", "{storage-jwt-secret}"),
            ])
            .into_iter()
            .collect(),
            ..LocalSettings::default()
        };
        let bindings = function_bindings(&placeholders(), &settings, &[]);
        assert_eq!(
            get(&bindings, "KEY").map(str::to_owned),
            Some(tokens::service_key(DEMO_JWT_SECRET))
        );
        assert_eq!(get(&bindings, "AT"), Some("http://127.0.0.1:1/x"));
        assert_eq!(get(&bindings, "SECRET"), Some(STORAGE_JWT_SECRET));
        // No stand-ins run here: neither S3 nor the Auth JWKS.
        assert_eq!(get(&bindings, "S3_ENDPOINT"), None);
        assert_eq!(get(&bindings, "S3_FORCE_PATH_STYLE"), None);
        assert_eq!(get(&bindings, "SUPABASE_JWKS_URL"), None);
    }

    #[test]
    fn local_settings_are_read_from_the_functions_manifest() {
        let root = tempfile::tempdir().expect("root");
        let dir = root.path().join("functions/mailer");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("Cargo.toml"),
            r#"
[package]
name = "mailer"
version.workspace = true

[package.metadata.wasm-pack]
ignored = true

[package.metadata.edge-stack]
dev-port = 8799
billing-webhook-secrets = true

[package.metadata.edge-stack.bindings]
EMAIL_API_URL = "{email}"
"#,
        )
        .expect("write");
        let settings = LocalSettings::read(root.path(), "mailer").expect("read");
        assert_eq!(settings.dev_port, Some(8799));
        assert_eq!(
            settings.bindings.get("EMAIL_API_URL").map(String::as_str),
            Some("{email}")
        );
        assert!(settings.billing_webhook_secrets);
        // A build without a crate has no settings of its own.
        assert_eq!(
            LocalSettings::read(root.path(), "echo").expect("read"),
            LocalSettings::default()
        );
        // A misspelt key is an error, not a silently missing setting.
        std::fs::write(
            dir.join("Cargo.toml"),
            "[package]\nname = \"mailer\"\n[package.metadata.edge-stack]\ndev_port = 1\n",
        )
        .expect("write");
        assert!(LocalSettings::read(root.path(), "mailer").is_err());
    }

    #[test]
    fn configured_secrets_are_the_secret_bindings_each_once() {
        let billing = LocalSettings {
            billing_webhook_secrets: true,
            ..LocalSettings::default()
        };
        let function = |name: &str, settings: &LocalSettings, extra: &[(&str, &str)]| Function {
            name: name.to_owned(),
            build: workerd::Build::Function(name.to_owned()),
            port: 1,
            bindings: function_bindings(&placeholders(), settings, &[&owned(extra)]),
        };
        let secrets = configured_secrets(&[
            function("a", &LocalSettings::default(), &[]),
            function(
                "b",
                &billing,
                &[("STRIPE_WEBHOOK_SECRET", "whsec_new, whsec_old")],
            ),
        ]);
        let values: Vec<&str> = secrets.iter().map(|(_, v)| v.as_str()).collect();
        assert!(values.contains(&DEMO_JWT_SECRET));
        assert!(values.contains(&tokens::service_key(DEMO_JWT_SECRET).as_str()));
        assert!(values.contains(&webhook_secret(edge_billing::event::Provider::Paddle).as_str()));
        assert!(values.contains(&"whsec_new") && values.contains(&"whsec_old"));
        assert!(!values.contains(&tokens::anon_key(DEMO_JWT_SECRET).as_str()));
        assert!(
            !values.contains(&"authenticated"),
            "JWT_AUDIENCE is no secret"
        );
        let mut unique = values.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), values.len(), "each value once");
    }
}
