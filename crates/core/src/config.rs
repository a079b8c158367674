//! Reading configuration from a worker's vars and secrets.
//!
//! A [`Source`] is anything that answers "what is the value of NAME": the
//! worker `Env` in production (vars first, then secrets), a map in tests. The
//! helpers here turn a missing or malformed value into a [`ConfigError`] that
//! names the variable, so a misdeployed function says what to fix in its log.
//! Each function reads its config once per isolate, not per request.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

/// Where configuration values come from.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Source for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

impl Source for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

impl Source for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        Source::get(self.as_slice(), name)
    }
}

/// A missing or malformed variable. Displays the variable's name and what is
/// wrong with it, never its value (it may be a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(name: &str, problem: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Typed access to a [`Source`]. Empty strings count as unset: `wrangler`
/// and `.dev.vars` make it easy to leave a variable present but blank.
pub struct Vars<'a>(pub &'a dyn Source);

impl Vars<'_> {
    pub fn optional(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// A required value that will be sent in an HTTP header (an API key): it
    /// must be visible ASCII, or the HTTP client would refuse (or panic on)
    /// it at request time instead of now.
    pub fn header_value(&self, name: &str) -> Result<String, ConfigError> {
        let value = self.required(name)?;
        if value.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                name,
                "contains characters not allowed in an HTTP header",
            ))
        }
    }

    /// A required secret; see [`Secret`].
    pub fn secret(&self, name: &str) -> Result<Secret, ConfigError> {
        self.required(name).map(Secret)
    }

    /// A required secret sent in an HTTP header (checked as [`Self::header_value`]).
    pub fn header_secret(&self, name: &str) -> Result<Secret, ConfigError> {
        self.header_value(name).map(Secret)
    }

    /// Parses an optional value, falling back to `default` when unset.
    pub fn parse_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|_| {
                ConfigError::new(name, format!("is not a valid {}", short_type::<T>()))
            }),
        }
    }

    /// A comma-separated list; unset means empty.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.optional(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An `http(s)://` URL without a trailing slash, so callers can append
    /// paths. Not parsed further: the HTTP client reports anything worse.
    pub fn url(&self, name: &str) -> Result<String, ConfigError> {
        let url = self.required(name)?;
        Self::check_url(name, url)
    }

    pub fn url_or(
        &self,
        name: &str,
        default: impl FnOnce() -> Option<String>,
    ) -> Result<String, ConfigError> {
        match self.optional(name).or_else(default) {
            Some(url) => Self::check_url(name, url),
            None => Err(ConfigError::new(name, "is required but not set")),
        }
    }

    fn check_url(name: &str, url: String) -> Result<String, ConfigError> {
        if url.starts_with("https://") || url.starts_with("http://") {
            Ok(url.trim_end_matches('/').to_owned())
        } else {
            Err(ConfigError::new(name, "must be an http:// or https:// URL"))
        }
    }
}

fn short_type<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// A configured secret (an API key, a signing secret). `Debug` never shows
/// it, so config structs can derive `Debug` and still be logged safely; the
/// value is reached only through [`Secret::expose`], at the call that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_printed() {
        let src = [("API_KEY", "re_live_abcdef")];
        let secret = Vars(&src).secret("API_KEY").unwrap();
        assert_eq!(secret.expose(), "re_live_abcdef");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            key: Secret,
        }
        let printed = format!("{:?}", Config { key: secret });
        assert!(!printed.contains("abcdef"), "{printed}");
        assert!(Vars(&src).secret("MISSING").is_err());
    }

    #[test]
    fn errors_name_the_variable_but_not_the_value() {
        let src = [
            ("MAX_BODY_BYTES", "lots"),
            ("URL", "ftp://x"),
            ("EMPTY", "  "),
        ];
        let vars = Vars(&src);
        let e = vars.parse_or::<usize>("MAX_BODY_BYTES", 1).unwrap_err();
        assert_eq!(e.name, "MAX_BODY_BYTES");
        assert!(!e.to_string().contains("lots"));
        assert_eq!(vars.url("URL").unwrap_err().name, "URL");
        assert_eq!(vars.required("EMPTY").unwrap_err().name, "EMPTY");
        assert_eq!(
            vars.required("MISSING").unwrap_err().to_string(),
            "MISSING: is required but not set"
        );
    }

    #[test]
    fn lists_and_defaults() {
        let src = [
            ("ORIGINS", " https://a.example , ,https://b.example"),
            ("URL", "https://x.supabase.co/"),
        ];
        let vars = Vars(&src);
        assert_eq!(
            vars.list("ORIGINS"),
            ["https://a.example", "https://b.example"]
        );
        assert!(vars.list("NONE").is_empty());
        assert_eq!(vars.parse_or("N", 7u32), Ok(7));
        assert_eq!(vars.url("URL").as_deref(), Ok("https://x.supabase.co"));
    }
}
