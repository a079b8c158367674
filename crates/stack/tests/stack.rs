//! Starts real stacks (PostgreSQL, PostgREST, workerd) from a small fixture
//! repository, so these tests pin the stack's own behaviour and not the
//! project's SQL or functions, which other tests cover.
//!
//! The fixture borrows the real `node_modules` (PostgREST and workerd
//! binaries) and serves a plain-JS worker, so no wasm build is needed.

use std::{fs, path::Path};

use edge_stack::{tokens, DemoUser, Services, Stack, StackOptions};
use nix::{sys::signal::kill, unistd::Pid};
use serde_json::{json, Value};

/// What the stack needs of a bootstrap (run as the cluster's superuser):
/// the `postgres` login everything after it runs as, with its password.
const BOOTSTRAP: &str = r#"
create role postgres login createrole password 'postgres';
grant all on schema public to postgres;
create role anon nologin noinherit;
create role authenticated nologin noinherit;
create role service_role nologin noinherit bypassrls;
create role authenticator login noinherit password 'authenticator';
grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;
"#;

const MIGRATION: &str = r#"
create table public.notes (id int primary key, owner_id uuid not null, body text not null);
alter table public.notes enable row level security;
grant select on public.notes to anon, authenticated, service_role;
create policy "Notes are viewable by their owner" on public.notes
  for select to authenticated
  using (owner_id = (current_setting('request.jwt.claims', true)::json ->> 'sub')::uuid);
"#;

const SEED: &str = r#"
insert into public.notes values
  (1, '11111111-1111-4111-8111-111111111111', 'owner note'),
  (2, '22222222-2222-4222-8222-222222222222', 'member note');
"#;

/// Echoes its bindings, and proxies `/rest/*` to PostgREST to prove that
/// outbound fetches to 127.0.0.1 are allowed.
const WORKER_JS: &str = r#"
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/health") return new Response("ok");
    if (url.pathname === "/env") return Response.json(env);
    if (url.pathname.startsWith("/rest/")) {
      const upstream = await fetch(env.POSTGREST_URL + url.pathname.slice(5), {
        headers: { apikey: env.SUPABASE_ANON_KEY, authorization: "Bearer " + env.SUPABASE_SERVICE_ROLE_KEY },
      });
      return new Response(await upstream.text(), { status: upstream.status });
    }
    return new Response("not found", { status: 404 });
  },
};
"#;

const PGTAP: &str = r#"
begin;
create extension if not exists pgtap;
select plan(1);
select is((select count(*) from public.notes)::int, 2, 'the seed has two notes');
select * from finish();
rollback;
"#;

/// A repository with the fixture SQL and one function, `echo`.
fn fixture(migration: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("fixture dir");
    let path = root.path();
    let write = |rel: &str, body: &[u8]| {
        let file = path.join(rel);
        fs::create_dir_all(file.parent().expect("has parent")).expect("mkdir");
        fs::write(file, body).expect("write fixture file");
    };
    write("dev/bootstrap.sql", BOOTSTRAP.as_bytes());
    write("migrations/20260101000000_notes.sql", migration.as_bytes());
    write("dev/seed.sql", SEED.as_bytes());
    write("functions/echo/build/index.js", WORKER_JS.as_bytes());
    // The smallest valid wasm module: magic number and version.
    write("functions/echo/build/index_bg.wasm", b"\0asm\x01\0\0\0");
    write("tests/db/01_notes.sql", PGTAP.as_bytes());
    std::os::unix::fs::symlink(
        edge_stack::repo_root().join("node_modules"),
        path.join("node_modules"),
    )
    .expect("link node_modules");
    root
}

fn options(root: &Path) -> StackOptions {
    StackOptions {
        root: root.to_owned(),
        ..StackOptions::ephemeral()
    }
}

async fn get_json(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

#[tokio::test]
async fn full_stack_serves_functions_with_config_bindings() {
    let root = fixture(MIGRATION);
    let stack = Stack::start(options(root.path()).binding("CAPTCHA_VERIFY_URL", "http://stub"))
        .await
        .expect("stack starts");

    let (status, env) = get_json(&format!("{}/env", stack.function_url("echo")), None).await;
    assert_eq!(status, 200);
    assert_eq!(env["POSTGREST_URL"], stack.postgrest_url());
    assert_eq!(env["SUPABASE_ANON_KEY"], stack.anon_key());
    assert_eq!(env["SUPABASE_SERVICE_ROLE_KEY"], stack.service_key());
    assert_eq!(env["SUPABASE_JWT_SECRET"], stack.jwt_secret());
    assert_eq!(env["JWT_AUDIENCE"], "authenticated");
    assert_eq!(env["CAPTCHA_VERIFY_URL"], "http://stub");

    // Through the worker, with the service key: both rows.
    let (status, rows) =
        get_json(&format!("{}/rest/notes", stack.function_url("echo")), None).await;
    assert_eq!(status, 200);
    assert_eq!(rows.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn postgrest_honours_minted_tokens() {
    let root = fixture(MIGRATION);
    let stack = Stack::start(options(root.path()).services(Services::Database))
        .await
        .expect("stack starts");
    assert!(stack.functions().is_empty());
    let notes = format!("{}/notes?select=body", stack.postgrest_url());

    let (_, rows) = get_json(&notes, Some(&stack.user_token(DemoUser::Owner))).await;
    assert_eq!(rows, json!([{ "body": "owner note" }]));

    let (_, rows) = get_json(&notes, Some(&stack.user_token(DemoUser::Outsider))).await;
    assert_eq!(rows, json!([]));

    let (_, rows) = get_json(&notes, Some(&stack.anon_key())).await;
    assert_eq!(rows, json!([]));

    let (_, rows) = get_json(&notes, Some(&stack.service_key())).await;
    assert_eq!(rows.as_array().map(Vec::len), Some(2));

    let mut claims = tokens::user_claims(DemoUser::Owner, chrono::Utc::now());
    claims["exp"] = json!(chrono::Utc::now().timestamp() - 60);
    let expired = stack.mint(&claims).expect("mint");
    let (status, _) = get_json(&notes, Some(&expired)).await;
    assert_eq!(status, 401);

    let forged = tokens::mint("a-different-secret-of-at-least-32-chars", &claims).expect("mint");
    let (status, _) = get_json(&notes, Some(&forged)).await;
    assert_eq!(status, 401);

    assert_eq!(
        stack
            .psql("select body from notes order by id")
            .await
            .expect("psql"),
        "owner note\nmember note\n"
    );
}

#[tokio::test]
async fn pg_prove_runs_pgtap_against_the_seeded_database() {
    let root = fixture(MIGRATION);
    let stack = Stack::start(options(root.path()).services(Services::Postgres))
        .await
        .expect("stack starts");
    let files = edge_stack::pgtap_files(root.path()).expect("list");
    assert!(stack.pg_prove(&files).await.expect("pg_prove").success());
}

#[tokio::test]
async fn broken_migration_fails_start_with_psql_error() {
    let root = fixture("create table broken (;");
    let err = Stack::start(options(root.path()).services(Services::Postgres))
        .await
        .expect_err("start fails");
    let message = format!("{err:#}");
    assert!(message.contains("20260101000000_notes.sql"), "{message}");
    assert!(message.contains("syntax error"), "{message}");
}

#[tokio::test]
async fn dropping_the_stack_stops_every_process_and_removes_its_dir() {
    let root = fixture(MIGRATION);
    let stack = Stack::start(options(root.path()))
        .await
        .expect("stack starts");
    let pids = stack.pids();
    let dir = stack.dir().to_owned();
    assert_eq!(pids.len(), 3);
    assert!(dir.is_dir());

    drop(stack);
    for (name, pid) in pids {
        let alive = kill(Pid::from_raw(pid as i32), None).is_ok();
        assert!(!alive, "{name} (pid {pid}) still running");
    }
    assert!(!dir.exists());
}

#[tokio::test]
async fn unknown_function_is_refused_with_build_hint() {
    let root = fixture(MIGRATION);
    let err = Stack::start(options(root.path()).functions(["nope"]))
        .await
        .expect_err("start fails");
    assert!(format!("{err:#}").contains("scripts/build-functions.sh nope"));
}

/// Linux fires PR_SET_PDEATHSIG when the spawning *thread* exits; a stack
/// shared between tests is started on one test's thread and must survive it.
#[test]
fn stack_outlives_the_thread_that_started_it() {
    let root = fixture(MIGRATION);
    let opts = options(root.path()).services(Services::Database);
    let mut stack = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(Stack::start(opts))
            .expect("stack starts")
    })
    .join()
    .expect("starter thread");

    // Give the kernel time to deliver a death signal, were one coming.
    std::thread::sleep(std::time::Duration::from_millis(500));
    stack
        .ensure_running()
        .expect("servers survive the thread that started them");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (status, _) = runtime.block_on(get_json(
        &format!("{}/notes", stack.postgrest_url()),
        Some(&stack.service_key()),
    ));
    assert_eq!(status, 200);
}

/// A counted variant reaches PostgREST through a proxy of its own that
/// records each request; the function it copies, and everyone else, do not.
#[tokio::test]
async fn a_counted_variant_reaches_postgrest_through_its_own_counter() {
    let root = fixture(MIGRATION);
    let stack = Stack::start(options(root.path()).counted("echo-counted", "echo"))
        .await
        .expect("stack starts");
    let counter = stack
        .postgrest_counter("echo-counted")
        .expect("a counter for the counted variant");
    assert!(stack.postgrest_counter("echo").is_none());

    let (_, env) = get_json(&format!("{}/env", stack.function_url("echo-counted")), None).await;
    assert_eq!(env["POSTGREST_URL"], counter.url());
    assert_ne!(counter.url(), stack.postgrest_url());

    // Through the counted variant: counted, answered as PostgREST answers.
    let (status, rows) = get_json(
        &format!("{}/rest/notes", stack.function_url("echo-counted")),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rows.as_array().map(Vec::len), Some(2));
    assert_eq!(counter.count(), 1);
    let recorded = &counter.requests()[0];
    assert_eq!(recorded["method"], "GET");
    assert_eq!(recorded["path"], "/notes");
    assert_eq!(
        recorded["headers"]["authorization"],
        format!("Bearer {}", stack.service_key())
    );
    assert_eq!(recorded["status"], 200);

    // Through the plain function: PostgREST directly, nothing counted.
    let (status, _) = get_json(&format!("{}/rest/notes", stack.function_url("echo")), None).await;
    assert_eq!(status, 200);
    assert_eq!(counter.count(), 1);
}

#[tokio::test]
async fn js_workers_are_served_and_each_script_start_up_is_measured() {
    let root = fixture(MIGRATION);
    let source = root.path().join("plain.js");
    fs::write(
        &source,
        r#"export default { fetch() { return new Response("plain"); } };"#,
    )
    .expect("write");
    let stack = Stack::start(options(root.path()).js_worker("plain", &source))
        .await
        .expect("stack starts");
    let body = reqwest::get(format!("{}/anything", stack.function_url("plain")))
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "plain");

    for name in ["plain", "echo"] {
        let took = stack.startup_time(name).await.expect("start-up measured");
        assert!(
            took > std::time::Duration::ZERO && took < std::time::Duration::from_secs(30),
            "{name}: {took:?}"
        );
    }
    assert!(stack.startup_time("nobody").await.is_err());
    // The measuring workerds are gone again; the stack's own still serves.
    let status = reqwest::get(format!("{}/health", stack.function_url("echo")))
        .await
        .expect("request")
        .status();
    assert_eq!(status, 200);
}
