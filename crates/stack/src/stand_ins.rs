//! The third parties the functions call, stood in for locally while the
//! stack runs: the [`stubs`] (captcha, email, Auth's JWKS, hosted
//! Storage), a refused port, and the S3-compatible store when asked for.
//! Their URLs and secrets reach the functions through placeholders
//! ([`crate::bindings::Placeholders`]).

use std::path::Path;

use crate::{s3, stubs};

/// The running stand-ins; each stops when dropped (with the stack).
#[derive(Default)]
pub(crate) struct StandIns {
    pub(crate) captcha: Option<stubs::Stub>,
    pub(crate) email: Option<stubs::Stub>,
    pub(crate) auth: Option<stubs::Stub>,
    pub(crate) storage: Option<stubs::Stub>,
    /// `{refused}`'s URL, and the socket that holds its port (bound, never
    /// listening) while the stack runs.
    pub(crate) refused: Option<(String, tokio::net::TcpSocket)>,
    pub(crate) s3: Option<s3::S3Server>,
}

impl StandIns {
    /// None at all: nothing calls out when no function is served.
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// Every stub, and the S3 store in `dir` when `with_s3`.
    pub(crate) async fn start(dir: &Path, with_s3: bool) -> anyhow::Result<Self> {
        Ok(Self {
            s3: if with_s3 {
                Some(s3::S3Server::start(dir).await?)
            } else {
                None
            },
            captcha: Some(stubs::captcha(0).await?),
            email: Some(stubs::email(0).await?),
            auth: Some(stubs::auth(0).await?),
            storage: Some(stubs::storage(0).await?),
            refused: Some(stubs::refused_url()?),
        })
    }
}
