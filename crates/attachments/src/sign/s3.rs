//! Presigned URLs for S3-compatible stores: Cloudflare R2, AWS S3, MinIO,
//! Supabase Storage's S3 endpoint. No network call.
//!
//! Implements AWS Signature Version 4 with the signature in the query
//! string, as specified in "Authenticating Requests: Using Query Parameters
//! (AWS Signature Version 4)":
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>
//! (canonical request, string to sign and signing key as in
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>).
//! The payload is `UNSIGNED-PAYLOAD`; the URL carries `X-Amz-Algorithm`,
//! `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires` (at most 604800),
//! `X-Amz-SignedHeaders` and `X-Amz-Signature`. A test reproduces the
//! example of that page byte for byte.
//!
//! Downloads sign `host` only. Uploads also sign `content-length` and
//! `content-type`, so the store refuses a body of another size or type than
//! the one the caller approved (the client must send exactly those headers;
//! a browser's `fetch` of a `File` does). Object keys are encoded with
//! [`super::uri_encode`], `/` kept; keys are never normalised (S3 does not
//! normalise them), which is why [`super::check_path`] refuses `.`/`..`.
//! Virtual-hosted style (`https://{bucket}.{endpoint host}/{key}`) is the
//! default; `S3_FORCE_PATH_STYLE=true` gives `{endpoint}/{bucket}/{key}`,
//! which MinIO and Supabase's S3 endpoint need. A bucket name with dots over
//! https is always path style, as the AWS SDKs address it: the endpoint's
//! wildcard certificate (`*.s3.amazonaws.com`) covers one label, not
//! `my.bucket.s3.amazonaws.com` (S3 user guide, "Virtual hosting of
//! general purpose buckets":
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html>).
//!
//! Written here on `hmac` and `sha2` rather than with the `aws-sigv4` crate:
//! that crate (1.6.4, features `sign-http,http1`) builds for
//! wasm32-unknown-unknown, but added about 137 KB of wasm (59 KB gzipped,
//! after wasm-opt) to a probe, with second copies of `hmac` and `sha2`, for a
//! hundred lines of string building. The date is formatted by hand too
//! (chrono's formatter cost 29 KB of wasm). Left out: session tokens
//! (`X-Amz-Security-Token`), SigV4A, POST policies, response header
//! overrides (`response-content-disposition`).

use super::{uri_encode, Access, Backend, Settings, SignedUrl, Signing};
use edge_core::{ConfigError, Error, Method, Secret, Sleep, Vars};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

/// The longest `X-Amz-Expires` AWS accepts: seven days.
pub const MAX_EXPIRES_SECS: u32 = 604_800;

/// S3 settings. `Debug` omits the secret access key.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// `S3_ENDPOINT`: `https://{account}.r2.cloudflarestorage.com`,
    /// `https://s3.{region}.amazonaws.com`, `http://127.0.0.1:9000`,
    /// `https://{ref}.supabase.co/storage/v1/s3`. No bucket in it.
    pub endpoint: String,
    /// `S3_REGION`: `auto` for R2, the bucket's region for AWS.
    pub region: String,
    /// `S3_BUCKET`.
    pub bucket: String,
    /// `S3_ACCESS_KEY_ID`: public, it appears in every URL.
    pub access_key_id: String,
    /// `S3_SECRET_ACCESS_KEY` (secret).
    secret_access_key: Secret,
    /// `S3_FORCE_PATH_STYLE`: `true` or `false` (default).
    pub force_path_style: bool,
    /// Whether URLs are path style: forced, or a dotted bucket over https.
    pub path_style: bool,
    scheme: String,
    /// Host, with the port when it is not the scheme's default.
    host: String,
    /// The endpoint's path without a trailing `/` (often empty).
    base_path: String,
}

impl S3Config {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let endpoint = vars.url("S3_ENDPOINT")?;
        let bad_endpoint = |problem: &str| ConfigError::new("S3_ENDPOINT", problem);
        let parsed = reqwest::Url::parse(&endpoint).map_err(|_| bad_endpoint("is not a URL"))?;
        if parsed.query().is_some()
            || parsed.fragment().is_some()
            || parsed.has_authority() && !parsed.username().is_empty()
        {
            return Err(bad_endpoint("must have no credentials, query or fragment"));
        }
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(bad_endpoint("has no host")),
        };
        let base_path = parsed.path().trim_end_matches('/').to_owned();
        if !base_path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~/".contains(&b))
        {
            return Err(bad_endpoint("path may contain only A-Z a-z 0-9 - _ . ~ /"));
        }

        let region = vars.required("S3_REGION")?;
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError::new("S3_REGION", "is not a region name"));
        }
        let force_path_style = vars.parse_or("S3_FORCE_PATH_STYLE", false)?;
        let bucket = vars.required("S3_BUCKET")?;
        // A virtual-hosted bucket becomes part of the host name.
        let dns_name = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !force_path_style && !dns_name {
            return Err(ConfigError::new(
                "S3_BUCKET",
                "must be 3-63 of a-z 0-9 - . for virtual-hosted style (or set S3_FORCE_PATH_STYLE=true)",
            ));
        }
        if bucket.contains('/') || bucket.chars().any(char::is_control) {
            return Err(ConfigError::new("S3_BUCKET", "is not a bucket name"));
        }
        let path_style = force_path_style || (parsed.scheme() == "https" && bucket.contains('.'));
        Ok(Self {
            endpoint,
            region,
            bucket,
            access_key_id: vars.header_value("S3_ACCESS_KEY_ID")?,
            secret_access_key: vars.secret("S3_SECRET_ACCESS_KEY")?,
            force_path_style,
            path_style,
            scheme: parsed.scheme().to_owned(),
            host,
            base_path,
        })
    }
}

impl Settings for S3Config {
    fn signer(self: Box<Self>, _: reqwest::Client, _: Sleep) -> Box<dyn Backend> {
        Box::new(Presigner::new(*self))
    }
}

/// Presigns S3 requests.
pub struct Presigner {
    config: S3Config,
}

impl Presigner {
    pub fn new(config: S3Config) -> Self {
        Self { config }
    }

    /// The URL and headers for downloading or uploading `path`.
    pub fn sign(
        &self,
        path: &str,
        access: &Access,
        ttl_secs: u32,
        now: u64,
    ) -> Result<SignedUrl, Error> {
        let (method, headers) = match access {
            Access::Download => (Method::Get, BTreeMap::new()),
            Access::Upload {
                content_type,
                content_length,
            } => (
                Method::Put,
                BTreeMap::from([
                    ("content-length".to_owned(), content_length.to_string()),
                    ("content-type".to_owned(), content_type.clone()),
                ]),
            ),
        };
        let signed: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let url = self.presign(&method, path, &signed, ttl_secs, now)?;
        Ok(SignedUrl {
            url,
            method,
            headers,
            expires_at: now.saturating_add(u64::from(ttl_secs)),
        })
    }

    /// A SigV4 query-string presigned URL for `method` on `key`, valid for
    /// `expires_secs` from `now` (unix seconds). `headers` (lower-case
    /// names) are signed besides `host`, and the client must send them with
    /// exactly these values.
    pub fn presign(
        &self,
        method: &Method,
        key: &str,
        headers: &[(&str, &str)],
        expires_secs: u32,
        now: u64,
    ) -> Result<String, Error> {
        if !(1..=MAX_EXPIRES_SECS).contains(&expires_secs) {
            return Err(Error::internal(format!(
                "s3: X-Amz-Expires {expires_secs} outside 1..={MAX_EXPIRES_SECS}"
            )));
        }
        let c = &self.config;
        let amz_date = amz_date(now);
        let date = &amz_date[..8];

        // 1. Where the request goes.
        let (host, path) = if c.path_style {
            (
                c.host.clone(),
                format!(
                    "{}/{}/{}",
                    c.base_path,
                    uri_encode(&c.bucket, false),
                    uri_encode(key, true)
                ),
            )
        } else {
            (
                format!("{}.{}", c.bucket, c.host),
                format!("{}/{}", c.base_path, uri_encode(key, true)),
            )
        };

        // 2. Canonical headers: lower-case names, sorted, values trimmed
        //    with inner runs of spaces collapsed.
        let mut canonical_headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_ascii_lowercase(),
                    v.split_whitespace().collect::<Vec<_>>().join(" "),
                )
            })
            .chain([("host".to_owned(), host.clone())])
            .collect();
        canonical_headers.sort();
        let signed_headers = canonical_headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(";");

        // 3. Query parameters, already in byte order of their names.
        let scope = format!("{date}/{}/s3/aws4_request", c.region);
        let query = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
            ("X-Amz-Credential", format!("{}/{scope}", c.access_key_id)),
            ("X-Amz-Date", amz_date.clone()),
            ("X-Amz-Expires", expires_secs.to_string()),
            ("X-Amz-SignedHeaders", signed_headers.clone()),
        ]
        .iter()
        .map(|(n, v)| format!("{}={}", uri_encode(n, false), uri_encode(v, false)))
        .collect::<Vec<_>>()
        .join("&");

        // 4. Canonical request, string to sign, signature.
        let mut canonical_request = format!("{}\n{path}\n{query}\n", method.as_str());
        for (name, value) in &canonical_headers {
            canonical_request.push_str(&format!("{name}:{value}\n"));
        }
        canonical_request.push_str(&format!("\n{signed_headers}\nUNSIGNED-PAYLOAD"));
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            edge_core::sha256_hex(&canonical_request)
        );
        let signing_key = [c.region.as_bytes(), b"s3", b"aws4_request"].iter().fold(
            hmac_sha256(
                format!("AWS4{}", c.secret_access_key.expose()).as_bytes(),
                date.as_bytes(),
            ),
            |key, part| hmac_sha256(&key, part),
        );
        let signature = hex::encode(hmac_sha256(&signing_key, string_to_sign.as_bytes()));

        Ok(format!(
            "{}://{host}{path}?{query}&X-Amz-Signature={signature}",
            c.scheme
        ))
    }
}

impl Backend for Presigner {
    /// Not Storage's `download` parameter: S3 would have to sign
    /// `response-content-disposition`, which these URLs do not (see the
    /// module docs), and ignoring the ask would be worse than refusing it.
    fn takes_download_param(&self) -> bool {
        false
    }

    fn sign_one<'a>(
        &'a self,
        path: &'a str,
        access: &'a Access,
        ttl: u32,
        now: u64,
    ) -> Signing<'a, SignedUrl> {
        Box::pin(std::future::ready(self.sign(path, access, ttl, now)))
    }
}

/// `YYYYMMDDTHHMMSSZ` for unix seconds `now`, in UTC. The civil date is
/// Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>),
/// here for non-negative days only; ten lines instead of chrono's
/// formatting machinery in the wasm.
fn amz_date(now: u64) -> String {
    let (days, secs) = (now / 86_400, now % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2013-05-24T00:00:00Z, the time of AWS's examples.
    const AWS_EXAMPLE_TIME: u64 = 1_369_353_600;
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn presigner(endpoint: &str, region: &str, bucket: &str, path_style: bool) -> Presigner {
        let path_style = path_style.to_string();
        let vars = [
            ("S3_ENDPOINT", endpoint),
            ("S3_REGION", region),
            ("S3_BUCKET", bucket),
            ("S3_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            ("S3_SECRET_ACCESS_KEY", SECRET),
            ("S3_FORCE_PATH_STYLE", path_style.as_str()),
        ];
        Presigner::new(S3Config::from_vars(&Vars(&vars)).unwrap())
    }

    #[test]
    fn reproduces_the_aws_documentation_example_byte_for_byte() {
        // "Authenticating Requests: Using Query Parameters (AWS Signature
        // Version 4)", example: GET examplebucket/test.txt, 86400 s.
        let s3 = presigner(
            "https://s3.amazonaws.com",
            "us-east-1",
            "examplebucket",
            false,
        );
        let url = s3
            .presign(&Method::Get, "test.txt", &[], 86_400, AWS_EXAMPLE_TIME)
            .unwrap();
        assert_eq!(
            url,
            "https://examplebucket.s3.amazonaws.com/test.txt\
             ?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z\
             &X-Amz-Expires=86400\
             &X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    /// Signatures computed independently with botocore 1.43.11's
    /// `S3SigV4QueryAuth` (same keys and time as AWS's example).
    #[test]
    fn edge_case_keys_match_an_independent_implementation() {
        let cases = [
            // (endpoint, path style, method, key, expected path, signature)
            (
                "https://s3.amazonaws.com", false, "GET", "my file.txt",
                "https://examplebucket.s3.amazonaws.com/my%20file.txt",
                "cb993e8139f52cb05c07e75aeaf21fc08fd5e502fec6a4cce0b4c30a8914f272",
            ),
            (
                "https://s3.amazonaws.com", false, "GET", "dir/sub dir/ünïcödé.txt",
                "https://examplebucket.s3.amazonaws.com/dir/sub%20dir/%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt",
                "b7a0c7cf52af9c36d7442ce6cf9495b41796fae998b06936c6c78be5202ec811",
            ),
            (
                "https://s3.amazonaws.com", false, "GET", "a+b=c&d;e,f.txt",
                "https://examplebucket.s3.amazonaws.com/a%2Bb%3Dc%26d%3Be%2Cf.txt",
                "8e2282bd5b844dae19f34d4c7cd9dc484d6e0efbeea99117847cfc85bdb77356",
            ),
            (
                "https://s3.amazonaws.com", false, "GET", "tilde~/x_y-z.(1)!*'.txt",
                "https://examplebucket.s3.amazonaws.com/tilde~/x_y-z.%281%29%21%2A%27.txt",
                "9fe1a153cd0a983ab7cc6ecce988481550babea9f7e4e7656fde2caf9888ab38",
            ),
            (
                "https://s3.amazonaws.com", false, "GET", "percent%41 and ?hash#.txt",
                "https://examplebucket.s3.amazonaws.com/percent%2541%20and%20%3Fhash%23.txt",
                "572a8cf1d3d91a678879a4c9c8a253979b2550567ba34540b212aaee31993a21",
            ),
            (
                "http://127.0.0.1:9000", true, "GET", "a b/c+d~é.txt",
                "http://127.0.0.1:9000/examplebucket/a%20b/c%2Bd~%C3%A9.txt",
                "1662d9195314af59867354d4ec214765ed596ca17398b9ffd2c7635dac26d3e5",
            ),
            (
                "https://s3.amazonaws.com", false, "PUT", "upload/file name+1.png",
                "https://examplebucket.s3.amazonaws.com/upload/file%20name%2B1.png",
                "2b5c8a52bc30e965f6cd225a145bd2fb0bc8973d496068bf2c803c4ee0f625db",
            ),
            (
                "http://127.0.0.1:9000", true, "PUT", "upload/file name+1.png",
                "http://127.0.0.1:9000/examplebucket/upload/file%20name%2B1.png",
                "9bef45e51f139ca600ed3832a79e6de68e158685c2e4c134d7d6e6f019174f3c",
            ),
        ];
        for (endpoint, path_style, method, key, expected_path, signature) in cases {
            let s3 = presigner(endpoint, "us-east-1", "examplebucket", path_style);
            let url = s3
                .presign(&Method::parse(method), key, &[], 3600, AWS_EXAMPLE_TIME)
                .unwrap();
            let (path, query) = url.split_once('?').unwrap();
            assert_eq!(path, expected_path, "{key:?}");
            assert_eq!(
                query.rsplit_once("X-Amz-Signature=").unwrap().1,
                signature,
                "{method} {key:?} path style {path_style}"
            );
        }
    }

    #[test]
    fn uploads_sign_length_and_type_and_list_them_for_the_client() {
        let s3 = presigner(
            "https://acct.r2.cloudflarestorage.com",
            "auto",
            "attachments",
            false,
        );
        let access = Access::Upload {
            content_type: "image/png".into(),
            content_length: 1234,
        };
        let signed = s3
            .sign("t1/shot.png", &access, 300, AWS_EXAMPLE_TIME)
            .unwrap();
        assert_eq!(signed.method, Method::Put);
        assert!(signed
            .url
            .starts_with("https://attachments.acct.r2.cloudflarestorage.com/t1/shot.png?"));
        assert!(signed
            .url
            .contains("&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&"));
        assert!(signed.url.contains("%2Fauto%2Fs3%2Faws4_request&"));
        assert_eq!(
            signed.headers,
            BTreeMap::from([
                ("content-length".to_owned(), "1234".to_owned()),
                ("content-type".to_owned(), "image/png".to_owned()),
            ])
        );
        assert_eq!(signed.expires_at, AWS_EXAMPLE_TIME + 300);
        // botocore 1.43.11: put_object with ContentType and ContentLength.
        assert_eq!(
            signed.url,
            "https://attachments.acct.r2.cloudflarestorage.com/t1/shot.png\
             ?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fauto%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z\
             &X-Amz-Expires=300\
             &X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost\
             &X-Amz-Signature=fecc153083ad234ae842e68f08791321ae023332d99dbf925477e37d4d88f0cb"
        );
    }

    #[test]
    fn endpoints_with_ports_and_paths_keep_them_in_the_signed_url() {
        let cases = [
            (
                "http://127.0.0.1:9000",
                "http://127.0.0.1:9000/attachments/a%20b.txt?",
            ),
            (
                "https://abc.supabase.co/storage/v1/s3/",
                "https://abc.supabase.co/storage/v1/s3/attachments/a%20b.txt?",
            ),
            (
                "https://s3.amazonaws.com:443",
                "https://s3.amazonaws.com/attachments/a%20b.txt?",
            ),
        ];
        for (endpoint, prefix) in cases {
            let url = presigner(endpoint, "us-east-1", "attachments", true)
                .presign(&Method::Get, "a b.txt", &[], 60, AWS_EXAMPLE_TIME)
                .unwrap();
            assert!(url.starts_with(prefix), "{url}");
        }
    }

    #[test]
    fn dotted_buckets_over_https_are_addressed_path_style_as_the_aws_sdks_do() {
        // `*.s3.amazonaws.com` (or `*.r2.cloudflarestorage.com`) covers one
        // label, so `files.example.com.s3.amazonaws.com` fails TLS.
        let dotted = presigner(
            "https://s3.amazonaws.com",
            "us-east-1",
            "files.example.com",
            false,
        )
        .presign(&Method::Get, "a b.txt", &[], 60, AWS_EXAMPLE_TIME)
        .unwrap();
        assert!(
            dotted.starts_with("https://s3.amazonaws.com/files.example.com/a%20b.txt?"),
            "{dotted}"
        );
        let forced = presigner(
            "https://s3.amazonaws.com",
            "us-east-1",
            "files.example.com",
            true,
        )
        .presign(&Method::Get, "a b.txt", &[], 60, AWS_EXAMPLE_TIME)
        .unwrap();
        assert_eq!(
            dotted, forced,
            "signed exactly as with S3_FORCE_PATH_STYLE=true"
        );

        // Plain http has no certificate to match, and a bucket without dots
        // fits the wildcard: both stay virtual-hosted.
        for (endpoint, bucket, prefix) in [
            (
                "http://minio.local:9000",
                "files.example.com",
                "http://files.example.com.minio.local:9000/a%20b.txt?",
            ),
            (
                "https://s3.amazonaws.com",
                "files-example",
                "https://files-example.s3.amazonaws.com/a%20b.txt?",
            ),
        ] {
            let url = presigner(endpoint, "us-east-1", bucket, false)
                .presign(&Method::Get, "a b.txt", &[], 60, AWS_EXAMPLE_TIME)
                .unwrap();
            assert!(url.starts_with(prefix), "{url}");
        }
    }

    #[test]
    fn amz_dates_are_utc_civil_dates_across_leap_years() {
        // Expected values from Python's datetime.
        let cases = [
            (0, "19700101T000000Z"),
            (951_782_400, "20000229T000000Z"),
            (951_868_799, "20000229T235959Z"),
            (AWS_EXAMPLE_TIME, "20130524T000000Z"),
            (1_709_164_800, "20240229T000000Z"),
            (4_107_542_400, "21000301T000000Z"),
            (4_107_628_800, "21000302T000000Z"),
            (253_402_300_799, "99991231T235959Z"),
        ];
        for (now, expected) in cases {
            assert_eq!(amz_date(now), expected, "{now}");
        }
    }

    #[test]
    fn expiry_outside_what_aws_accepts_is_refused() {
        let s3 = presigner(
            "https://s3.amazonaws.com",
            "us-east-1",
            "examplebucket",
            false,
        );
        for expires in [0, MAX_EXPIRES_SECS + 1] {
            assert!(s3
                .presign(&Method::Get, "k", &[], expires, AWS_EXAMPLE_TIME)
                .is_err());
        }
        assert!(s3
            .presign(&Method::Get, "k", &[], MAX_EXPIRES_SECS, AWS_EXAMPLE_TIME)
            .is_ok());
    }

    #[test]
    fn config_refuses_what_would_sign_a_wrong_url() {
        let base = [
            ("S3_ENDPOINT", "https://s3.amazonaws.com"),
            ("S3_REGION", "us-east-1"),
            ("S3_BUCKET", "attachments"),
            ("S3_ACCESS_KEY_ID", "AKID"),
            ("S3_SECRET_ACCESS_KEY", "secret"),
        ];
        let with = |name: &str, value: &'static str| {
            let mut vars: Vec<(String, String)> = base
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect();
            vars.retain(|(n, _)| n != name);
            vars.push((name.to_owned(), value.to_owned()));
            S3Config::from_vars(&Vars(&vars))
        };
        assert!(with("S3_REGION", "auto").is_ok());
        for (name, value) in [
            ("S3_ENDPOINT", "s3.amazonaws.com"),
            ("S3_ENDPOINT", "https://s3.amazonaws.com/?x=1"),
            ("S3_ENDPOINT", "https://user:pw@s3.amazonaws.com"),
            ("S3_ENDPOINT", "https://s3.amazonaws.com/a%20b"),
            ("S3_REGION", "US East"),
            ("S3_BUCKET", "Not_DNS"),
            ("S3_FORCE_PATH_STYLE", "yes"),
        ] {
            assert_eq!(with(name, value).unwrap_err().name, name, "{value}");
        }
    }
}
