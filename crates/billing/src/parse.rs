//! What the three providers' parsers ([`crate::stripe`], [`crate::lemon_squeezy`],
//! [`crate::paddle`]) share: times, ids, amounts, and the split between a body
//! that cannot be read (the handler answers 400, nothing is recorded) and an
//! event whose object lacks what we need ([`Change::Invalid`], recorded as
//! failed).

use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use edge_core::Error;
use serde::Deserialize;

use crate::event::{Change, Customer, Provider};

/// A body that is not the provider's event envelope, or lacks its id, type or
/// time: answered 400 and not recorded (there is no event id to record it by).
pub(crate) fn unreadable(provider: Provider, why: impl fmt::Display) -> Error {
    Error::bad_request(format!(
        "The body is not a {} webhook event: {why}.",
        provider.as_str()
    ))
}

/// What one event does, before the envelope's id, type and time are added.
pub(crate) struct Parts {
    pub account_id: Option<String>,
    pub customer: Option<Customer>,
    pub change: Change,
}

impl Parts {
    pub fn new(account_id: Option<String>, customer: Option<Customer>, change: Change) -> Self {
        Self {
            account_id,
            customer,
            change,
        }
    }

    pub fn ignored(reason: impl Into<String>) -> Self {
        Self::new(
            None,
            None,
            Change::Ignored {
                reason: reason.into(),
            },
        )
    }

    pub fn invalid(error: String) -> Self {
        Self::new(None, None, Change::Invalid { error })
    }
}

/// Reads `object` (one event's payload, already known to be JSON) as `T`; the
/// message says which object of which event could not be read.
pub(crate) fn read<'a, T: Deserialize<'a>>(
    object: &'a serde_json::Value,
    what: &str,
) -> Result<T, String> {
    T::deserialize(object).map_err(|e| cannot_read(what, e))
}

/// [`read`] from the object's JSON text as it came: no `Value` tree is
/// built for it first (for Stripe's 10 KB objects that tree was half of the
/// parse's CPU in workerd).
pub(crate) fn read_raw<T: serde::de::DeserializeOwned>(
    object: &serde_json::value::RawValue,
    what: &str,
) -> Result<T, String> {
    serde_json::from_str(object.get()).map_err(|e| cannot_read(what, e))
}

fn cannot_read(what: &str, e: serde_json::Error) -> String {
    format!("the {what} in the payload cannot be read: {e}")
}

/// Unix seconds as RFC 3339 UTC (`2025-09-10T12:00:05Z`); None when out of range.
pub(crate) fn unix_to_rfc3339(secs: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp(secs, 0).and_then(format_utc)
}

/// An optional unix time field as RFC 3339; an out-of-range value is an error.
pub(crate) fn unix_field(secs: Option<i64>, field: &str) -> Result<Option<String>, String> {
    secs.map(|s| unix_to_rfc3339(s).ok_or_else(|| format!("{field} ({s}) is not a time")))
        .transpose()
}

/// Any RFC 3339 time (`2025-09-10T12:00:07.000000Z`, `...+02:00`) in UTC,
/// with as many fraction digits as it needs (none when whole seconds).
pub(crate) fn normalize_rfc3339(text: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .and_then(|t| format_utc(t.with_timezone(&Utc)))
}

/// An optional RFC 3339 field, normalised; an unreadable value is an error.
pub(crate) fn time_field(text: Option<&str>, field: &str) -> Result<Option<String>, String> {
    text.map(|t| {
        normalize_rfc3339(t).ok_or_else(|| format!("{field} ({t:?}) is not an RFC 3339 time"))
    })
    .transpose()
}

/// None outside the years 0001 to 9999: RFC 3339 has four-digit years, and
/// PostgreSQL's `timestamptz` refuses year 0 and what chrono writes beyond
/// (`+10000-01-01T00:00:00Z`, `-0001-...`), so such an event would fail in
/// `apply_billing_event` on every redelivery instead of being a 400 here.
fn format_utc(time: DateTime<Utc>) -> Option<String> {
    (1..=9999)
        .contains(&time.year())
        .then(|| time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// ISO 4217 codes upper case, whatever the provider sends (Stripe: lower).
pub(crate) fn currency(code: Option<String>) -> Option<String> {
    non_empty(code).map(|c| c.to_ascii_uppercase())
}

/// An amount in minor units sent as a string (Paddle: `"2900"`).
pub(crate) fn minor_units(text: &str, field: &str) -> Result<i64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{field} ({text:?}) is not an amount in minor units"))
}

/// `#[serde(default, deserialize_with = "null_as_default")]`: a field the
/// provider sends as `null` (Stripe's `cancel_at_period_end: null`, Lemon
/// Squeezy's `cancelled: null`) reads as its default (`false`, 0, empty)
/// instead of failing the whole event; `default` covers an absent field.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Empty strings (Stripe's `client_reference_id: ""`) count as absent.
pub(crate) fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}

/// An id the provider may send as a number (Lemon Squeezy: `"variant_id": 11111`)
/// or a string (`"id": "1843920"`); we always keep it as a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Id {
    Text(String),
    Number(i64),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Text(text) => f.write_str(text),
            Id::Number(number) => write!(f, "{number}"),
        }
    }
}

/// `custom_data` / `metadata`: whatever the integration put there; we read
/// only `account_id` (a string, or a number we keep as a string).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CustomData {
    #[serde(default)]
    pub account_id: Option<Id>,
}

impl CustomData {
    pub fn account_id(&self) -> Option<String> {
        non_empty(self.account_id.as_ref().map(Id::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_rfc3339_with_only_the_fraction_they_need() {
        assert_eq!(
            unix_to_rfc3339(1_757_505_605).as_deref(),
            Some("2025-09-10T12:00:05Z")
        );
        assert_eq!(unix_to_rfc3339(i64::MAX), None);
        assert_eq!(
            normalize_rfc3339("2025-09-10T12:00:07.000000Z").as_deref(),
            Some("2025-09-10T12:00:07Z")
        );
        assert_eq!(
            normalize_rfc3339("2025-09-10T12:00:09.611250Z").as_deref(),
            Some("2025-09-10T12:00:09.611250Z")
        );
        assert_eq!(
            normalize_rfc3339("2025-09-10T14:00:00+02:00").as_deref(),
            Some("2025-09-10T12:00:00Z")
        );
        assert_eq!(normalize_rfc3339("yesterday"), None);
        assert!(time_field(Some("2025-13-01"), "ends_at").is_err());
        assert_eq!(time_field(None, "ends_at"), Ok(None));
    }

    /// Found by the fuzz targets' payload check (fuzz/regressions/*_payload/):
    /// chrono formats these, PostgreSQL refuses them. Fails before the fix:
    /// `Some("+10000-01-01T00:00:00Z")`, `Some("0000-06-01T00:00:00Z")`.
    #[test]
    fn times_postgres_cannot_store_are_not_times() {
        assert_eq!(unix_to_rfc3339(253_402_300_800), None); // year 10000
        assert_eq!(unix_to_rfc3339(-62_135_596_801), None); // year 0
        assert_eq!(
            unix_to_rfc3339(253_402_300_799).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(
            unix_to_rfc3339(-62_135_596_800).as_deref(),
            Some("0001-01-01T00:00:00Z")
        );
        assert_eq!(normalize_rfc3339("0000-06-01T00:00:00Z"), None);
        assert_eq!(normalize_rfc3339("0001-01-01T00:00:00+01:00"), None);
        assert!(unix_field(Some(253_402_300_800), "current_period_end").is_err());
    }

    #[test]
    fn null_reads_as_the_default() {
        #[derive(Deserialize)]
        struct Flags {
            #[serde(default, deserialize_with = "null_as_default")]
            flag: bool,
        }
        let read = |json: &str| serde_json::from_str::<Flags>(json).map(|f| f.flag).ok();
        assert_eq!(read(r#"{"flag": null}"#), Some(false));
        assert_eq!(read(r#"{}"#), Some(false));
        assert_eq!(read(r#"{"flag": true}"#), Some(true));
        assert_eq!(read(r#"{"flag": "yes"}"#), None);
    }

    #[test]
    fn ids_amounts_and_currencies() {
        let ids: Vec<Id> = serde_json::from_str(r#"[11111, "22222"]"#).unwrap_or_default();
        let ids: Vec<String> = ids.iter().map(Id::to_string).collect();
        assert_eq!(ids, ["11111", "22222"]);
        assert_eq!(minor_units("2900", "total"), Ok(2900));
        assert!(minor_units("29.00", "total").is_err());
        assert_eq!(currency(Some("usd".into())).as_deref(), Some("USD"));
        assert_eq!(currency(Some(String::new())), None);
        assert_eq!(non_empty(Some(" ".into())), None);
    }
}
