//! The example form (`examples/ticket-form.html`) in headless Chromium,
//! driven over WebDriver: fill it in, submit it, follow the redirect, then
//! find the rows. Debian's chromium and chromium-driver; no browser download.

use anyhow::{ensure, Context as _};
use edge_e2e::{ensure_eq, World};
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

/// Serves `html` at `/contact` on a free port; returns the page's origin.
async fn serve_page(html: String) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let app = axum::Router::new().route(
        "/contact",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((origin, task))
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

    let port = free_port()?;
    let _driver = Driver(
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
    let mut client = None;
    for _ in 0..300 {
        let attempt = ClientBuilder::rustls()?
            .capabilities(capabilities.as_object().cloned().unwrap_or_default())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match attempt {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let browser = client.context("chromedriver did not answer")?;
    let result = drive(&browser, &origin, world).await;
    let _ = browser.close().await;
    server.abort();
    result
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
