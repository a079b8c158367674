//! The minimal HTML a plain form post gets back when the account has no
//! thank-you page of its own, or when the submission failed. No scripts, no
//! external assets; every dynamic value is escaped.

use edge_core::{Error, Response};

/// `url` with `key=value` added to its query (before any fragment).
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let pair = serde_urlencoded::to_string([(key, value)]).unwrap_or_default();
    let separator = if base.contains('?') { '&' } else { '?' };
    match fragment {
        Some(fragment) => format!("{base}{separator}{pair}#{fragment}"),
        None => format!("{base}{separator}{pair}"),
    }
}

pub fn thanks_page(reference: Option<&str>) -> Response {
    let line = match reference {
        Some(reference) => format!(
            "<p>Your reference is <strong>{}</strong>. Keep it for any follow-up.</p>",
            escape(reference)
        ),
        None => String::new(),
    };
    page(
        200,
        "Thank you",
        &format!(
            "<h1>Thank you</h1>\n<p>We received your request and will answer by email.</p>\n{line}"
        ),
    )
}

/// The failure of a form post, as a page: what went wrong, each invalid
/// field, and a link back to the form (its `Referer`, when it is a web page).
pub fn error_page(err: &Error, referer: Option<&str>) -> Response {
    let problem = err.to_response("form");
    let detail = serde_json::from_slice::<serde_json::Value>(&problem.body).ok();
    let text = detail
        .as_ref()
        .and_then(|d| d["detail"].as_str())
        .unwrap_or("The request could not be handled.");
    let mut body = format!(
        "<h1>We could not send your request</h1>\n<p>{}</p>\n",
        escape(text)
    );
    if let Error::Validation { errors } = err {
        body.push_str("<ul>\n");
        for e in errors {
            body.push_str(&format!(
                "<li><strong>{}</strong> {}</li>\n",
                escape(&e.field),
                escape(&e.message)
            ));
        }
        body.push_str("</ul>\n");
    }
    if let Some(back) = referer.filter(|r| r.starts_with("https://") || r.starts_with("http://")) {
        body.push_str(&format!(
            "<p><a href=\"{}\">Back to the form</a></p>\n",
            escape(back)
        ));
    }
    let mut response = page(err.status(), "Request not sent", &body);
    for name in ["retry-after", "allow"] {
        if let Some(value) = problem.header(name) {
            response = response.with_header(name, value);
        }
    }
    response
}

fn page(status: u16, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\n<body>\n{body}</body>\n</html>\n"
    );
    Response::new(status)
        .with_header("content-type", "text/html; charset=utf-8")
        .with_header("cache-control", "no-store")
        .with_header("content-security-policy", "default-src 'none'")
        .with_body(html)
}

/// Escapes text for HTML element content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_core::FieldError;

    #[test]
    fn queries_are_appended_before_fragments() {
        assert_eq!(
            with_query("https://a.example/thanks", "reference", "TK 1"),
            "https://a.example/thanks?reference=TK+1"
        );
        assert_eq!(
            with_query("https://a.example/t?x=1#top", "reference", "R"),
            "https://a.example/t?x=1&reference=R#top"
        );
    }

    #[test]
    fn error_pages_escape_and_link_back() {
        let err = Error::Validation {
            errors: vec![FieldError::new("title", "<script>alert(1)</script>")],
        };
        let page = error_page(&err, Some("https://acme.example/contact?a=1&b=2"));
        let html = String::from_utf8(page.body).expect("utf8");
        assert_eq!(page.status, 422);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("href=\"https://acme.example/contact?a=1&amp;b=2\""));

        let page = error_page(&err, Some("javascript:alert(1)"));
        assert!(!String::from_utf8(page.body)
            .expect("utf8")
            .contains("javascript:"));
    }

    #[test]
    fn rate_limited_pages_keep_retry_after() {
        let page = error_page(
            &Error::TooManyRequests {
                retry_after_secs: 30,
            },
            None,
        );
        assert_eq!(page.status, 429);
        assert_eq!(page.header("retry-after"), Some("30"));
    }
}
