//! The project's own small request and response types.
//!
//! Handlers take and return these instead of `worker::Request` or
//! `http::Request`, so the same handler runs in a native `#[tokio::test]` and
//! inside workerd. They hold only what handlers need: method, path, query,
//! headers (names lower-cased) and the body bytes. The `worker` crate's `http`
//! feature would give us `http::Request` for free, but measured on workerd it
//! doubles the CPU of every request; converting by hand in the glue is cheap.

use crate::error::Error;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other(String),
}

impl Method {
    pub fn parse(method: &str) -> Self {
        match method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(m) => m,
        }
    }

    /// `GET, POST` as used in `Allow` and CORS headers.
    pub fn join(methods: &[Method]) -> String {
        methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Header list with lower-cased names. A `Vec` rather than a map: requests
/// carry a handful of headers and order is kept for responses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Appends; use [`Headers::set`] to replace.
    pub fn append(&mut self, name: &str, value: &str) {
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.append(name, value);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Headers as `name:value\n` lines: how they cross the wasm boundary in
/// workerd (edge-worker's js/glue.js, edge-outbound's js/fetch.js split them
/// again). A header name never holds `:` and a value never a line break
/// (HTTP and the Fetch standard's Headers refuse both), so the lines need
/// no escaping.
pub fn header_lines<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines = String::new();
    for (name, value) in headers {
        lines.push_str(name);
        lines.push(':');
        lines.push_str(value);
        lines.push('\n');
    }
    lines
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (n, v) in iter {
            headers.append(n.as_ref(), v.as_ref());
        }
        headers
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The URL path, without query. May carry a route prefix
    /// (`/functions/v1/ticket-intake/tickets`); see [`Request::route_is`].
    pub path: String,
    /// The raw query string without `?`, empty when absent.
    pub query: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: Method, url_path_and_query: &str) -> Self {
        let (path, query) = match url_path_and_query.split_once('?') {
            Some((p, q)) => (p, q),
            None => (url_path_and_query, ""),
        };
        Self {
            method,
            path: if path.is_empty() { "/" } else { path }.to_owned(),
            query: query.to_owned(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(name, value);
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// True when the path is `route` or ends in `route` at a segment
    /// boundary, so the same worker answers under any prefix a deployment
    /// mounts it at (`/tickets`, `/api/tickets`). A trailing slash is ignored.
    pub fn route_is(&self, route: &str) -> bool {
        let path = self.path.trim_end_matches('/');
        let route = route.trim_end_matches('/');
        // `route` starts with '/', so a suffix match is a segment match.
        path == route || (route.starts_with('/') && path.ends_with(route))
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&self.query)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The `Idempotency-Key` header (IETF httpapi draft): absent, or 1 to
    /// 255 printable ASCII characters; anything else is a 400.
    pub fn idempotency_key(&self) -> Result<Option<String>, Error> {
        match self.header("idempotency-key").map(str::trim) {
            None | Some("") => Ok(None),
            Some(key) if key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(Some(key.to_owned()))
            }
            Some(_) => Err(Error::bad_request(
                "Idempotency-Key must be 1 to 255 printable ASCII characters.",
            )),
        }
    }

    /// The media type of the body, lower-cased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type")
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|v| !v.is_empty())
    }

    /// Parses a JSON body; 415 for another content type, 400 for bad JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        match self.media_type().as_deref() {
            Some("application/json") => {}
            Some(m) if m.ends_with("+json") => {}
            _ => {
                return Err(Error::UnsupportedMediaType {
                    expected: "application/json".into(),
                })
            }
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::bad_request(format!("The body is not valid JSON: {e}")))
    }
}

/// The body a route accepts, for [`Request::body_as`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
}

impl Request {
    /// Parses a JSON or `application/x-www-form-urlencoded` body into `T`,
    /// telling the caller which one it was (form posts get redirects, JSON
    /// callers get JSON). Any other content type is 415.
    pub fn body_as<T: DeserializeOwned>(&self) -> Result<(T, BodyKind), Error> {
        match self.media_type().as_deref() {
            Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(&self.body)
                .map(|v| (v, BodyKind::Form))
                .map_err(|e| Error::bad_request(format!("The form body could not be read: {e}"))),
            _ => match self.json() {
                Ok(v) => Ok((v, BodyKind::Json)),
                Err(Error::UnsupportedMediaType { .. }) => Err(Error::UnsupportedMediaType {
                    expected: "application/json or application/x-www-form-urlencoded".into(),
                }),
                Err(e) => Err(e),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response. Serialising our own types cannot fail in practice;
    /// should it, the error surfaces as a 500 instead of a panic.
    pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::internal(format!("serialising response: {e}")))?;
        Ok(Self::new(status)
            .with_header("content-type", "application/json")
            .with_body(body))
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.set(name, value);
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_are_name_colon_value_per_line() {
        let headers: Headers = [("Content-Type", "text/plain"), ("vary", "Origin")]
            .into_iter()
            .collect();
        assert_eq!(
            header_lines(headers.iter()),
            "content-type:text/plain\nvary:Origin\n"
        );
        assert_eq!(header_lines([]), "");
    }

    #[test]
    fn routes_match_under_any_prefix() {
        let req = |p: &str| Request::new(Method::Get, p);
        assert!(req("/tickets").route_is("/tickets"));
        assert!(req("/tickets/").route_is("/tickets"));
        assert!(req("/functions/v1/ticket-intake/tickets").route_is("/tickets"));
        assert!(!req("/mytickets").route_is("/tickets"));
        assert!(!req("/tickets/extra").route_is("/tickets"));
        assert!(req("/health?deep=1").route_is("/health"));
    }

    #[test]
    fn query_params_are_decoded() {
        let req = Request::new(Method::Get, "/health?deep=1&x=a%20b");
        assert_eq!(req.query_param("deep").as_deref(), Some("1"));
        assert_eq!(req.query_param("x").as_deref(), Some("a b"));
        assert_eq!(req.query_param("nope"), None);
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Form {
        title: String,
    }

    #[test]
    fn bodies_by_content_type() {
        let json = Request::new(Method::Post, "/")
            .with_header("Content-Type", "application/json; charset=utf-8")
            .with_body(r#"{"title":"hi"}"#);
        assert_eq!(json.body_as::<Form>().expect("json").1, BodyKind::Json);

        let form = Request::new(Method::Post, "/")
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body("title=a+b%21");
        let (parsed, kind) = form.body_as::<Form>().expect("form");
        assert_eq!(parsed.title, "a b!");
        assert_eq!(kind, BodyKind::Form);

        let text = Request::new(Method::Post, "/")
            .with_header("content-type", "text/plain")
            .with_body("hi");
        assert_eq!(
            text.body_as::<Form>().map(|_| ()).unwrap_err().status(),
            415
        );

        let broken = Request::new(Method::Post, "/")
            .with_header("content-type", "application/json")
            .with_body("{");
        assert_eq!(broken.json::<Form>().unwrap_err().status(), 400);
    }
}
