//! ticket-intake in headless Chromium, driven over WebDriver: the example
//! form (`examples/ticket-form.html`) filled in, submitted and redirected,
//! and a page calling the function with `fetch()`, where the browser
//! enforces CORS. Debian's chromium and chromium-driver; no browser
//! download.

use anyhow::{ensure, Context as _};
use edge_e2e::{ensure_eq, World};
use edge_testing::server::{Reply, Server};
use fantoccini::{ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// chromedriver, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Serves `html` at `/contact` on a free port (until dropped); returns the
/// page's origin.
async fn serve_page(html: String) -> anyhow::Result<(String, Server)> {
    let server = Server::start(move |request| match request.path.as_str() {
        "/contact" if request.method == "GET" => {
            Reply::body(200, "text/html; charset=utf-8", html.clone())
        }
        "/contact" => Reply::status(405),
        _ => Reply::status(404),
    })
    .await;
    Ok((server.url().to_owned(), server))
}

pub async fn the_example_form_works_in_a_real_browser(world: &World) -> anyhow::Result<()> {
    let captcha = world
        .stack
        .captcha()
        .context("captcha stand-in")?
        .url()
        .to_owned();
    let template =
        std::fs::read_to_string(edge_stack::repo_root().join("examples/ticket-form.html"))?;
    let html = template
        .replace("{{INTAKE_URL}}", world.function("ticket-intake"))
        .replace("{{INTAKE_KEY}}", "acme")
        .replace("{{TURNSTILE_SITE_KEY}}", "1x00000000000000000000AA")
        .replace("https://challenges.cloudflare.com", &captcha);
    let (origin, server) = serve_page(html).await?;
    // The page's origin must be one the account allows.
    world
        .stack
        .psql(&format!(
            "update public.ticket_intakes set allowed_origins = allowed_origins || '{{{origin}}}' where intake_key = 'acme'"
        ))
        .await?;

    let browser = Browser::launch().await?;
    let result = drive(&browser.client, &origin, world).await;
    browser.close().await;
    drop(server);
    result
}

/// Chromium under chromedriver, with a fresh profile.
struct Browser {
    client: fantoccini::Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch() -> anyhow::Result<Self> {
        let port = free_port()?;
        let driver = Driver(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("start chromedriver (Debian package chromium-driver; scripts/install-tools.sh installs it)")?,
        );
        let profile = tempfile::tempdir()?;
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        for _ in 0..300 {
            let attempt = ClientBuilder::rustls()?
                .capabilities(capabilities.as_object().cloned().unwrap_or_default())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
            match attempt {
                Ok(client) => {
                    return Ok(Self {
                        client,
                        _driver: driver,
                        _profile: profile,
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        anyhow::bail!("chromedriver did not answer")
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

async fn drive(browser: &fantoccini::Client, origin: &str, world: &World) -> anyhow::Result<()> {
    let title = format!("browser-{}", uuid::Uuid::new_v4().simple());
    browser.goto(&format!("{origin}/contact")).await?;
    // The widget script fills its hidden field once it has run.
    browser
        .wait()
        // Generous: a cold Chromium on a busy 2-core machine is slow.
        .at_most(Duration::from_secs(45))
        .for_element(Locator::Css("input[name='cf-turnstile-response']"))
        .await
        .context("the captcha widget never filled its field")?;
    for (field, value) in [
        ("customer_name", "Grace Hopper"),
        ("customer_email", "grace@example.com"),
        ("title", title.as_str()),
        ("content", "Filled in by a real browser."),
    ] {
        browser
            .find(Locator::Id(field))
            .await?
            .send_keys(value)
            .await?;
    }
    browser
        .find(Locator::Css("button[type='submit']"))
        .await?
        .click()
        .await?;

    let thanks = format!(
        "{}/tickets/thanks?reference=",
        world.function("ticket-intake")
    );
    let mut url = String::new();
    for _ in 0..300 {
        url = browser.current_url().await?.to_string();
        if url.starts_with(&thanks) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        url.starts_with(&thanks),
        "not redirected to the thank-you page: {url}"
    );
    let reference = url.rsplit('=').next().unwrap_or_default().to_owned();
    let page = browser.source().await?;
    ensure!(page.contains(&reference), "the page shows the reference");

    let row = world
        .stack
        .psql(&format!(
            "select t.title, t.customer_name, t.priority, m.content from public.tickets t \
             join public.messages m on m.ticket_id = t.id where t.reference = '{reference}'"
        ))
        .await?;
    ensure_eq!(
        row.trim(),
        format!("{title}|Grace Hopper|medium|Filled in by a real browser."),
        "the ticket and message rows"
    );
    Ok(())
}

/// Posts `body` as JSON to `url` with `fetch()` from the current page, as a
/// form's script would (with an `Idempotency-Key`, so the browser sends a
/// preflight), and hands back what the page could read: `{status, type,
/// body, request_id}`, or `{error}` when the browser refused to let it see
/// the answer.
const FETCH: &str = r#"
const [url, body, key, done] = arguments;
fetch(url, {
  method: "POST",
  headers: {"content-type": "application/json", "idempotency-key": key},
  body: JSON.stringify(body),
}).then(async (r) => done({
  status: r.status,
  type: r.headers.get("content-type"),
  request_id: r.headers.get("x-request-id"),
  body: await r.text(),
})).catch((e) => done({error: String(e)}));
"#;

async fn fetch_from_page(
    browser: &fantoccini::Client,
    url: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let key = uuid::Uuid::new_v4().to_string();
    Ok(browser
        .execute_async(FETCH, vec![url.into(), body.clone(), key.into()])
        .await?)
}

pub async fn a_page_on_an_allowed_origin_reads_every_answer_with_fetch(
    world: &World,
) -> anyhow::Result<()> {
    let page = "<!doctype html><title>Support</title><p>A page with a script.</p>".to_owned();
    let (allowed, allowed_server) = serve_page(page.clone()).await?;
    let (foreign, foreign_server) = serve_page(page).await?;
    // Only the first page's origin is on Acme's list; neither is in any
    // static CORS setting.
    world
        .stack
        .psql(&format!(
            "update public.ticket_intakes set allowed_origins = allowed_origins || '{{{allowed}}}' where intake_key = 'acme'"
        ))
        .await?;

    let browser = Browser::launch().await?;
    let result = fetch_cases(&browser.client, &allowed, &foreign, world).await;
    browser.close().await;
    drop(allowed_server);
    drop(foreign_server);
    result
}

async fn fetch_cases(
    browser: &fantoccini::Client,
    allowed: &str,
    foreign: &str,
    world: &World,
) -> anyhow::Result<()> {
    let url = format!("{}/tickets", world.function("ticket-intake"));
    let ticket = |title: &str| {
        serde_json::json!({
            "intake_key": "acme",
            "title": title,
            "content": "Sent with fetch() from the support page.",
            "customer_email": "grace@example.com",
            "captcha_token": format!("pass-{}", uuid::Uuid::new_v4().simple()),
        })
    };

    browser.goto(&format!("{allowed}/contact")).await?;
    let title = format!("fetch-{}", uuid::Uuid::new_v4().simple());
    let created = fetch_from_page(browser, &url, &ticket(&title)).await?;
    ensure_eq!(created["status"], 201, "the page reads the 201: {created}");
    let answer: serde_json::Value =
        serde_json::from_str(created["body"].as_str().unwrap_or_default())?;
    let reference = answer["reference"].as_str().unwrap_or_default().to_owned();
    ensure!(reference.starts_with("TK-"), "and its reference: {answer}");
    let row = world
        .stack
        .psql(&format!(
            "select title from public.tickets where reference = '{reference}'"
        ))
        .await?;
    ensure_eq!(row.trim(), title, "the ticket it names");

    let invalid = serde_json::json!({"intake_key": "acme", "title": " ", "captcha_token": "x"});
    let refused = fetch_from_page(browser, &url, &invalid).await?;
    ensure_eq!(refused["status"], 422, "the page reads the 422: {refused}");
    ensure_eq!(
        refused["type"],
        "application/problem+json",
        "as problem+json"
    );
    let problem: serde_json::Value =
        serde_json::from_str(refused["body"].as_str().unwrap_or_default())?;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    ensure_eq!(
        fields,
        ["title", "content", "customer_email"],
        "with every field error"
    );
    ensure!(
        refused["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
            && refused["request_id"] == problem["request_id"],
        "and the exposed x-request-id: {refused}"
    );

    browser.goto(&format!("{foreign}/contact")).await?;
    let title = format!("fetch-foreign-{}", uuid::Uuid::new_v4().simple());
    let blocked = fetch_from_page(browser, &url, &ticket(&title)).await?;
    ensure!(
        blocked["error"]
            .as_str()
            .is_some_and(|e| e.contains("TypeError")),
        "a page on an origin no intake allows is blocked: {blocked}"
    );
    let count = world
        .stack
        .psql(&format!(
            "select count(*) from public.tickets where title = '{title}'"
        ))
        .await?;
    ensure_eq!(count.trim(), "0", "and its post never ran");
    Ok(())
}
