//! PostgREST access in two modes the types keep apart.
//!
//! - [`UserDb`] acts **as the caller**: it forwards the caller's verified JWT
//!   as `Authorization: Bearer` and the project's anon (publishable) key as
//!   `apikey`, so row-level security decides what the query sees. It can only
//!   be built from an [`edge_auth::AuthenticatedUser`], which only
//!   verification produces.
//! - [`ServiceDb`] acts **as the service**: it bypasses RLS. It can only be
//!   built from a [`ServiceKey`], which a function has only if its config
//!   reads `SUPABASE_SERVICE_ROLE_KEY`, and the two types share no trait, so a
//!   handler written against `UserDb` cannot be handed the service client.
//!
//! Both hand out `postgrest` query builders and run them through their
//! `execute` methods, which send them through [`edge_outbound::call`]
//! (the whole call, connect, answer and body, bounded by
//! `POSTGREST_TIMEOUT_MS`; the answer read up to a cap) and map PostgREST's and
//! Postgres's errors to the project's [`Error`] (see [`map_error`] for the
//! table). fetch() in workerd has no timeout of its own: without the bound a
//! PostgREST that accepts and never answers holds the request forever. The
//! bound lives here once, so no route can forget it. This crate
//! deliberately has no query helpers of its own: the `postgrest` builder is
//! the query API.
//!
//! See PostgREST's error docs: <https://docs.postgrest.org/en/v12/references/errors.html>.

use edge_auth::AuthenticatedUser;
use edge_core::{ConfigError, Error, Secret, Sleep, Vars};
use edge_outbound::{Answer, Bounds};
use postgrest::{Builder, Postgrest};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::time::Duration;

/// Where PostgREST is, the public key every request carries, and how long
/// any one call to it may take.
#[derive(Clone, Debug)]
pub struct PostgrestConfig {
    /// `POSTGREST_URL`, or `${SUPABASE_URL}/rest/v1` when unset.
    pub url: String,
    /// `SUPABASE_ANON_KEY`: the anon JWT or an `sb_publishable_...` key; sent
    /// as `apikey` on as-user requests. Public by design.
    pub anon_key: String,
    /// `POSTGREST_TIMEOUT_MS`: the longest one PostgREST call may take,
    /// body included; past it, 503 with `Retry-After`. Default 10000, above
    /// PostgREST's own 10 s wait for a pool connection (which answers 504).
    pub timeout: Duration,
    /// The host's timer the timeout runs on natively (inside workerd the
    /// runtime's `AbortSignal.timeout` does: see `edge_outbound`).
    pub sleep: Sleep,
}

impl PostgrestConfig {
    pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

    /// `sleep` is the host's timer, which bounds every call (see `timeout`).
    pub fn from_vars(vars: &Vars<'_>, sleep: Sleep) -> Result<Self, ConfigError> {
        let url = vars.url_or("POSTGREST_URL", || {
            vars.optional("SUPABASE_URL")
                .map(|base| format!("{}/rest/v1", base.trim_end_matches('/')))
        })?;
        let anon_key = vars.header_value("SUPABASE_ANON_KEY")?;
        let timeout_ms = vars.parse_or("POSTGREST_TIMEOUT_MS", Self::DEFAULT_TIMEOUT_MS)?;
        if timeout_ms == 0 {
            return Err(ConfigError::new(
                "POSTGREST_TIMEOUT_MS",
                "must be at least 1",
            ));
        }
        Ok(Self {
            url,
            anon_key,
            timeout: Duration::from_millis(timeout_ms),
            sleep,
        })
    }

    /// Sends one PostgREST request and reads its whole answer within the
    /// timeout: the one place every call goes through. Every failure is a
    /// 503; one past the deadline may still have reached PostgREST and
    /// committed, so callers must treat it as "unknown", never as "nothing
    /// happened".
    async fn send(&self, what: &str, request: reqwest::RequestBuilder) -> Result<Answer, Error> {
        let bounds = Bounds {
            timeout: self.timeout,
            max_body_bytes: MAX_ANSWER_BYTES,
        };
        edge_outbound::call(request, self.sleep, bounds)
            .await
            .map_err(|failure| {
                Error::unavailable(format!("PostgREST {} to {what}: {failure}", self.url))
            })
    }
}

/// The most bytes one PostgREST answer may have. Every query here asks for
/// a handful of rows; a bigger answer is a query gone wrong, and reading it
/// would grow the isolate's wasm memory for good.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The service credential. Never printed: `Debug` is redacted.
#[derive(Clone, Debug)]
pub struct ServiceKey(Secret);

impl ServiceKey {
    /// `SUPABASE_SERVICE_ROLE_KEY`: a legacy `service_role` JWT or an
    /// `sb_secret_...` key. Only functions that do trusted work read it.
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        vars.header_secret("SUPABASE_SERVICE_ROLE_KEY").map(Self)
    }

    /// Whether `presented` is this key, compared in constant time: for a
    /// route only the service may call (an operator's).
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        !presented.is_empty() && bool::from(self.0.expose().as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The headers that present this key to Supabase's APIs (PostgREST,
    /// Storage). The gateway accepts an `sb_secret_` key only as `apikey` and
    /// swaps in a service_role JWT itself; a legacy JWT key must also be the
    /// bearer, since that is what the services behind it read.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let key = self.0.expose();
        let mut headers = vec![("apikey", key.to_owned())];
        if !key.starts_with("sb_secret_") {
            headers.push(("authorization", format!("Bearer {key}")));
        }
        headers
    }
}

// `postgrest` panics on a header value it cannot encode; keys are read with
// `Vars::header_value`, which refuses such a value when the config is read.

/// PostgREST as the service role. Build once per isolate and reuse.
#[derive(Clone)]
pub struct ServiceDb {
    client: Postgrest,
    config: PostgrestConfig,
    headers: Vec<(&'static str, String)>,
}

impl ServiceDb {
    pub fn new(config: &PostgrestConfig, key: &ServiceKey) -> Self {
        let headers = key.headers();
        let client = headers
            .iter()
            .fold(Postgrest::new(&config.url), |c, (n, v)| {
                c.insert_header(*n, v)
            });
        Self {
            client,
            config: config.clone(),
            headers,
        }
    }

    pub fn from(&self, table: &str) -> Builder {
        self.client.from(table)
    }

    pub fn rpc(&self, function: &str, params: &serde_json::Value) -> Builder {
        self.client.rpc(function, params.to_string())
    }

    /// Whether PostgREST answers as the service (for `/health?deep=1`): a
    /// `HEAD` of the API root checks the connection and the key without
    /// transferring the OpenAPI document.
    pub async fn ping(&self) -> Result<(), Error> {
        let url = &self.config.url;
        let request = self.headers.iter().fold(
            reqwest::Client::new().head(format!("{url}/")),
            |r, (n, v)| r.header(*n, v),
        );
        let answer = self.config.send("the health check", request).await?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(Error::unavailable(format!(
                "PostgREST {url} answered {} to the service key",
                answer.status
            )))
        }
    }

    /// Runs a query built from this client and decodes the JSON answer.
    pub async fn execute<T: DeserializeOwned>(&self, query: Builder) -> Result<T, Error> {
        decode(&execute_raw(&self.config, query).await?)
    }

    /// Runs a query whose answer is not needed (`Prefer: return=minimal`).
    pub async fn execute_unit(&self, query: Builder) -> Result<(), Error> {
        execute_raw(&self.config, query).await.map(drop)
    }
}

/// What every function holds of Supabase's database API, built once per
/// isolate: where PostgREST is (for as-user clients), the service-role
/// client and its key.
#[derive(Clone)]
pub struct Supabase {
    config: PostgrestConfig,
    service: ServiceDb,
    key: ServiceKey,
}

impl Supabase {
    /// `PostgrestConfig::from_vars` and `ServiceKey::from_vars`: every
    /// function does trusted work somewhere, so each reads the service key.
    pub fn from_vars(vars: &Vars<'_>, sleep: Sleep) -> Result<Self, ConfigError> {
        let config = PostgrestConfig::from_vars(vars, sleep)?;
        let key = ServiceKey::from_vars(vars)?;
        Ok(Self {
            service: ServiceDb::new(&config, &key),
            config,
            key,
        })
    }

    /// PostgREST as the service role (bypasses RLS).
    pub fn service(&self) -> &ServiceDb {
        &self.service
    }

    /// PostgREST as `user`: RLS decides.
    pub fn as_user(&self, user: &AuthenticatedUser) -> UserDb {
        UserDb::new(&self.config, user)
    }

    /// The service key, for a route only the service may call.
    pub fn service_key(&self) -> &ServiceKey {
        &self.key
    }

    /// Deep health: PostgREST answers the service key.
    pub async fn probe(&self) -> Result<(), Error> {
        self.service.ping().await
    }
}

/// PostgREST as the calling user: RLS applies to everything it does.
pub struct UserDb {
    client: Postgrest,
    config: PostgrestConfig,
}

impl UserDb {
    pub fn new(config: &PostgrestConfig, user: &AuthenticatedUser) -> Self {
        // A verified JWT is base64url and dots, always a valid header value.
        let client = Postgrest::new(&config.url)
            .insert_header("apikey", &config.anon_key)
            .insert_header("authorization", format!("Bearer {}", user.token()));
        Self {
            client,
            config: config.clone(),
        }
    }

    pub fn from(&self, table: &str) -> Builder {
        self.client.from(table)
    }

    pub fn rpc(&self, function: &str, params: &serde_json::Value) -> Builder {
        self.client.rpc(function, params.to_string())
    }

    /// Runs a query built from this client and decodes the JSON answer.
    pub async fn execute<T: DeserializeOwned>(&self, query: Builder) -> Result<T, Error> {
        decode(&execute_raw(&self.config, query).await?)
    }

    /// Runs a query whose answer is not needed (`Prefer: return=minimal`).
    pub async fn execute_unit(&self, query: Builder) -> Result<(), Error> {
        execute_raw(&self.config, query).await.map(drop)
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::internal(format!("decoding PostgREST answer: {e}")))
}

/// Sends the query; a 2xx answer's body, or the answer as an [`Error`]
/// (PostgREST's 5xx, its database unreachable, are 503 like no answer).
async fn execute_raw(config: &PostgrestConfig, query: Builder) -> Result<Vec<u8>, Error> {
    let answer = config.send("a query", query.build()).await?;
    if (200..300).contains(&answer.status) {
        Ok(answer.body)
    } else {
        Err(map_error(answer.status, &answer.body))
    }
}

/// PostgREST's error body: <https://docs.postgrest.org/en/v12/references/errors.html>.
#[derive(Debug, Default, Deserialize)]
pub struct PostgrestError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub hint: Option<String>,
}

/// The prefix of a `raise exception` message that names the HTTP status the
/// caller should get: `raise exception 'http_402: Not enough credits'`
/// becomes a 402 whose detail is `Not enough credits`. Only 4xx statuses are
/// honoured; the text after the prefix is shown to the client, so SQL must
/// write it for them.
pub const RAISE_PREFIX: &str = "http_";

/// Maps a PostgREST error answer to an [`Error`]:
///
/// | PostgREST / Postgres                          | HTTP |
/// |-----------------------------------------------|------|
/// | `23505` unique violation                      | 409  |
/// | `23514` check, `23502` not-null, `23503` foreign key, `22xxx` data errors | 422 |
/// | `42501` insufficient privilege / RLS          | 403  |
/// | `P0001` with message `http_4xx: detail`       | 4xx  |
/// | `PTxxx` (PostgREST's own status override)     | xxx  |
/// | `PGRST301`/`PGRST302` JWT rejected            | 401  |
/// | `PGRST116` no row for `.single()`             | 404  |
/// | any 5xx, `PGRST000`-`PGRST003` connection     | 503 with `Retry-After` |
/// | no error body (no or empty `code` and `message`) | 503 with `Retry-After` |
/// | anything else                                 | 500 (our query is wrong) |
///
/// PostgREST 12 was seen answering `400` with an empty body to a request
/// caught by PostgreSQL's fast shutdown (e2e `faults::`): that is PostgREST
/// losing its database, not a query of ours it refused, so it is 503 like
/// the connection errors it does name.
pub fn map_error(status: u16, body: &[u8]) -> Error {
    let err: PostgrestError = serde_json::from_slice(body).unwrap_or_default();
    let blank = |field: &Option<String>| field.as_deref().is_none_or(str::is_empty);
    if blank(&err.code) && blank(&err.message) {
        return Error::unavailable(format!(
            "PostgREST answered {status} without an error body ({} bytes)",
            body.len()
        ));
    }
    let code = err.code.as_deref().unwrap_or("");
    let message = err.message.as_deref().unwrap_or("");
    let internal = || {
        format!(
            "PostgREST {status} {code}: {message} (details: {}, hint: {})",
            err.details.as_deref().unwrap_or("-"),
            err.hint.as_deref().unwrap_or("-")
        )
    };
    if let Some(mapped) = raised_status(code, message) {
        return mapped;
    }
    match code {
        "23505" => Error::conflict("A record with these values already exists."),
        "23514" | "23502" | "23503" => Error::Client {
            status: 422,
            detail: "The values break a rule of the data model.".into(),
        },
        c if c.starts_with("22") => Error::Client {
            status: 422,
            detail: "A value is malformed or out of range.".into(),
        },
        "42501" => Error::forbidden("You are not allowed to do this."),
        "PGRST301" | "PGRST302" => Error::unauthorized(internal()),
        "PGRST116" => Error::NotFound,
        "PGRST000" | "PGRST001" | "PGRST002" | "PGRST003" => Error::unavailable(internal()),
        _ if status >= 500 => Error::unavailable(internal()),
        _ => Error::internal(internal()),
    }
}

fn raised_status(code: &str, message: &str) -> Option<Error> {
    let (status, detail) = if code == "P0001" {
        let rest = message.strip_prefix(RAISE_PREFIX)?;
        let (status, detail) = rest.split_once(':')?;
        (status.trim().parse::<u16>().ok()?, detail.trim())
    } else {
        (code.strip_prefix("PT")?.parse::<u16>().ok()?, message)
    };
    (400..500).contains(&status).then(|| match status {
        404 => Error::NotFound,
        _ => Error::Client {
            status,
            detail: detail.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_testing::clock::tokio_sleep;
    use edge_testing::server::stalled;
    use edge_testing::vars;

    #[test]
    fn the_service_key_matches_only_itself() {
        let vars = [("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_abc")];
        let key = ServiceKey::from_vars(&Vars(&vars)).expect("key");
        assert!(key.matches("sb_secret_abc"));
        for other in ["", "sb_secret_ab", "sb_secret_abcd", "SB_SECRET_ABC"] {
            assert!(!key.matches(other), "{other:?}");
        }
    }

    fn mapped(status: u16, code: &str, message: &str) -> Error {
        let body =
            serde_json::json!({"code": code, "message": message, "details": null, "hint": null});
        map_error(status, body.to_string().as_bytes())
    }

    /// Seen in e2e `faults::` (PostgreSQL restarted under load): PostgREST
    /// answered `POST /rpc/reserve_email` with 400 and no body, which was a
    /// 500 "our query is wrong". Fails before: 500 for every case below.
    #[test]
    fn an_error_answer_without_postgrests_error_body_is_503() {
        let blank = br#"{"code":"","details":null,"hint":null,"message":""}"#;
        for (status, body) in [
            (400, &b""[..]),
            (400, b"Bad Request"),
            (404, b"{}"),
            (400, blank),
        ] {
            let err = map_error(status, body);
            assert_eq!(err.status(), 503, "{status} {body:?}: {err}");
            assert_eq!(err.to_response("r").header("retry-after"), Some("5"));
        }
        // A PostgREST error body still decides, even with odd statuses.
        assert_eq!(mapped(400, "42501", "permission denied").status(), 403);
    }

    #[test]
    fn postgres_errors_map_to_http_statuses() {
        let cases = [
            (
                409,
                "23505",
                "duplicate key value violates unique constraint \"x_key\"",
                409,
            ),
            (
                400,
                "23514",
                "new row violates check constraint \"credits_nonnegative\"",
                422,
            ),
            (400, "23502", "null value in column \"title\"", 422),
            (
                409,
                "23503",
                "insert or update violates foreign key constraint",
                422,
            ),
            (
                400,
                "22001",
                "value too long for type character varying(255)",
                422,
            ),
            (
                403,
                "42501",
                "new row violates row-level security policy for table \"tickets\"",
                403,
            ),
            (401, "42501", "permission denied for table tickets", 403),
            (400, "P0001", "http_402: Not enough credits", 402),
            (400, "P0001", "http_404: no such ticket", 404),
            (400, "P0001", "http_500: sneaky", 500),
            (400, "P0001", "plain exception", 500),
            (402, "PT402", "Payment Required", 402),
            (401, "PGRST301", "JWSError JWSInvalidSignature", 401),
            (
                406,
                "PGRST116",
                "JSON object requested, multiple (or no) rows returned",
                404,
            ),
            (503, "PGRST000", "Could not connect with the database", 503),
            (503, "PGRST001", "Database client error", 503),
            (
                503,
                "PGRST002",
                "Could not query the database for the schema cache",
                503,
            ),
            (
                504,
                "PGRST003",
                "Timed out acquiring connection from connection pool",
                503,
            ),
            // A fast shutdown ends PostgREST's sessions mid-query.
            (
                500,
                "57P01",
                "terminating connection due to administrator command",
                503,
            ),
            (502, "", "", 503),
            (400, "PGRST100", "failed to parse filter", 500),
        ];
        for (status, code, message, expected) in cases {
            let err = mapped(status, code, message);
            assert_eq!(err.status(), expected, "{status} {code} {message}");
        }
    }

    #[test]
    fn raised_detail_reaches_the_client_but_constraint_names_do_not() {
        let err = mapped(400, "P0001", "http_402: Not enough credits");
        let text = String::from_utf8(err.to_response("r").body).expect("utf8");
        assert!(text.contains("Not enough credits"));

        let err = mapped(
            409,
            "23505",
            "duplicate key value violates unique constraint \"user_mails_idem_key\"",
        );
        let text = String::from_utf8(err.to_response("r").body).expect("utf8");
        assert!(!text.contains("user_mails_idem_key"));
    }

    #[test]
    fn unparseable_error_bodies_still_map() {
        assert_eq!(map_error(500, b"<html>bad gateway</html>").status(), 503);
        // (400, empty) was 500 here until PostgREST was seen sending it when
        // its database went away: see the test above.
    }

    #[test]
    fn service_key_is_never_printed_and_must_be_header_safe() {
        let vars = [("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_abc")];
        let key = ServiceKey::from_vars(&Vars(&vars)).expect("key");
        assert!(!format!("{key:?}").contains("abc"));
        let bad = [("SUPABASE_SERVICE_ROLE_KEY", "abc\ndef")];
        assert_eq!(
            ServiceKey::from_vars(&Vars(&bad)).unwrap_err().name,
            "SUPABASE_SERVICE_ROLE_KEY"
        );
    }

    #[test]
    fn postgrest_url_defaults_to_the_supabase_rest_path() {
        let vars = [
            ("SUPABASE_URL", "https://abc.supabase.co/"),
            ("SUPABASE_ANON_KEY", "sb_publishable_x"),
        ];
        let config = PostgrestConfig::from_vars(&Vars(&vars), tokio_sleep).expect("config");
        assert_eq!(config.url, "https://abc.supabase.co/rest/v1");
        let vars = [
            ("POSTGREST_URL", "http://127.0.0.1:3000"),
            ("SUPABASE_ANON_KEY", "k"),
        ];
        assert_eq!(
            PostgrestConfig::from_vars(&Vars(&vars), tokio_sleep)
                .expect("config")
                .url,
            "http://127.0.0.1:3000"
        );
    }

    fn service_at(url: &str, timeout_ms: &str) -> ServiceDb {
        let vars = vars::supabase(url).set("POSTGREST_TIMEOUT_MS", timeout_ms);
        let config = PostgrestConfig::from_vars(&vars.vars(), tokio_sleep).expect("config");
        ServiceDb::new(&config, &ServiceKey::from_vars(&vars.vars()).expect("key"))
    }

    async fn timed(db: &ServiceDb) -> (Result<serde_json::Value, Error>, Duration) {
        let started = std::time::Instant::now();
        let result = db
            .execute::<serde_json::Value>(db.rpc("reserve_email", &serde_json::json!({})))
            .await;
        (result, started.elapsed())
    }

    /// Fails before: with the call unbounded (no `within` around it), both
    /// calls hang and the 5 s guard below fires.
    #[tokio::test]
    async fn a_postgrest_that_never_answers_or_stops_mid_body_is_503_within_the_timeout() {
        let silent = stalled(None).await;
        let mid_body = stalled(Some(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"mail",
        ))
        .await;
        for url in [silent.url(), mid_body.url()] {
            let db = service_at(url, "300");
            let (result, took) = tokio::time::timeout(Duration::from_secs(5), timed(&db))
                .await
                .expect("bounded by POSTGREST_TIMEOUT_MS, not hanging");
            let err = result.expect_err("no answer is an error");
            assert_eq!(err.status(), 503, "{url}: {err}");
            let response = err.to_response("r");
            assert_eq!(response.header("retry-after"), Some("5"));
            assert!(took >= Duration::from_millis(300), "{took:?}");
            assert!(took < Duration::from_secs(2), "{took:?}");
        }
        let silent = stalled(None).await;
        let db = service_at(silent.url(), "300");
        let ping = tokio::time::timeout(Duration::from_secs(5), db.ping())
            .await
            .expect("the health check is bounded too");
        assert_eq!(ping.expect_err("no answer").status(), 503);
    }

    #[tokio::test]
    async fn a_refused_connection_is_503_at_once() {
        // Bound and never listening: nothing answers there.
        let (url, _socket) = edge_testing::server::refused_url().expect("a refused port");
        let db = service_at(&url, "5000");
        let (result, took) = timed(&db).await;
        assert_eq!(result.expect_err("refused").status(), 503);
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn the_timeout_is_read_once_with_a_default_and_refuses_nonsense() {
        let base = [
            ("POSTGREST_URL", "http://127.0.0.1:3000"),
            ("SUPABASE_ANON_KEY", "k"),
        ];
        let config = PostgrestConfig::from_vars(&Vars(&base), tokio_sleep).expect("config");
        assert_eq!(config.timeout, Duration::from_millis(10_000));
        for bad in ["0", "-1", "soon"] {
            let vars = vars::of(&base).set("POSTGREST_TIMEOUT_MS", bad);
            assert_eq!(
                PostgrestConfig::from_vars(&vars.vars(), tokio_sleep)
                    .unwrap_err()
                    .name,
                "POSTGREST_TIMEOUT_MS",
                "{bad}"
            );
        }
    }
}
