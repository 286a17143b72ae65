//! The client side of the CLI commands that talk to a running server
//! (`reschedule --server`, `report --server`, `backlog export --server`, the
//! demo): one way to connect and to attach the bearer token, so a bad
//! address or token is reported the same way by every command.

use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig};
use tonic::Request;

/// Largest message a CLI client accepts: full plans of the national
/// scenario are a few MiB.
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// How long connecting (TCP, and TLS over https) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--server {url}: not a server address: {reason}")]
    Url { url: String, reason: String },
    /// The message carries the causes (refused, no route, a certificate
    /// not trusted, ...): the transport error itself says only "transport
    /// error", and not every command prints an error's sources.
    #[error("--server {url}: cannot connect: {}", causes(source))]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The TCP connection opened but the first gRPC call over plaintext
    /// HTTP/2 failed: almost always a server that speaks TLS. Without this
    /// check each command failed its first real call with whatever the
    /// transport said ("h2 protocol error", "operation was canceled").
    #[error(
        "--server {url}: the server does not answer plaintext HTTP/2 ({detail}); \
         if it serves TLS, use https://"
    )]
    NotPlaintext { url: String, detail: String },
    /// The TLS handshake got a reply that is not TLS: almost always a
    /// plaintext server.
    #[error(
        "--server {url}: the server does not answer TLS ({detail}); \
         if it serves plaintext, use http://"
    )]
    NotTls { url: String, detail: String },
    /// TCP's connect timeout does not cover the TLS handshake, so a port
    /// that accepts and never answers would hang the command.
    #[error("--server {url}: no answer within {} s", CONNECT_TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("--token: not usable as a bearer token (visible ASCII only)")]
    Token,
    /// rustls-native-certs skips a CA file or directory it cannot read
    /// and then reports only the server's certificate as untrusted.
    #[error("{var}={path}: {reason}")]
    CaSource {
        var: &'static str,
        path: String,
        reason: String,
    },
}

impl ClientError {
    /// The caller's mistake (address or token), not the network's.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            ClientError::Url { .. } | ClientError::Token | ClientError::CaSource { .. }
        )
    }
}

/// Errors' messages, outermost first, as `a: b: c`, leaving out one whose
/// text the line already holds (most of our errors quote their source).
/// The CLI prints every failure this way.
pub fn joined_messages<'a>(
    errors: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut out = String::new();
    for e in errors {
        let text = e.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The sources of `e`, innermost last (`e`'s own message if it has none).
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    match joined_messages(std::iter::successors(e.source(), |c| c.source())) {
        none if none.is_empty() => e.to_string(),
        some => some,
    }
}

/// Connects to `url` (`http://HOST:PORT` or `https://HOST:PORT`). Over
/// https the server's certificate must chain to a CA the system trusts;
/// `SSL_CERT_FILE` (a PEM file) or `SSL_CERT_DIR` replace the system's CAs,
/// e.g. with the private CA of an internal deployment.
pub async fn connect(url: &str) -> Result<Channel, ClientError> {
    // Without a scheme the address parses but every connect fails with a
    // transport error: name the mistake instead.
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ClientError::Url {
            url: url.into(),
            reason: "expected http://HOST:PORT or https://HOST:PORT".into(),
        });
    }
    let mut endpoint = Channel::from_shared(url.to_string()).map_err(|e| ClientError::Url {
        url: url.into(),
        reason: e.to_string(),
    })?;
    if url.starts_with("https://") {
        check_ca_sources()?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().with_native_roots())
            .map_err(|source| ClientError::Connect {
                url: url.into(),
                source,
            })?;
    }
    let endpoint = endpoint.connect_timeout(CONNECT_TIMEOUT);
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| ClientError::Timeout { url: url.into() })?
        .map_err(|source| {
            let detail = causes(&source);
            if url.starts_with("https://") && detail.contains("InvalidContentType") {
                ClientError::NotTls {
                    url: url.into(),
                    detail,
                }
            } else {
                ClientError::Connect {
                    url: url.into(),
                    source,
                }
            }
        })?;
    if url.starts_with("http://") {
        speaks_plaintext_grpc(url, channel.clone()).await?;
    }
    Ok(channel)
}

/// Over `http://` the HTTP/2 handshake is lazy, so a TLS server is only
/// noticed at the first call. Ask the health service (served without a
/// token) once: any answer, even "not found" or "unimplemented" from
/// another gRPC server, proves the transport works; a transport failure
/// is named here.
async fn speaks_plaintext_grpc(url: &str, channel: Channel) -> Result<(), ClientError> {
    use tonic::Code;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let mut request = Request::new(HealthCheckRequest::default());
    request.set_timeout(CONNECT_TIMEOUT);
    match HealthClient::new(channel).check(request).await {
        Err(status)
            if matches!(
                status.code(),
                Code::Internal | Code::Unknown | Code::Cancelled | Code::Unavailable
            ) =>
        {
            Err(ClientError::NotPlaintext {
                url: url.into(),
                detail: status.message().to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// `SSL_CERT_FILE` must be a readable file with a PEM certificate and
/// `SSL_CERT_DIR` a directory when set (non-empty): they replace the
/// system's CAs, so a typo would otherwise surface as "UnknownIssuer" with
/// no word about the variable.
fn check_ca_sources() -> Result<(), ClientError> {
    let err = |var, path: &std::path::Path, reason: String| ClientError::CaSource {
        var,
        path: path.display().to_string(),
        reason,
    };
    if let Some(file) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        use rustls_pki_types::{pem::PemObject, CertificateDer};
        let path = std::path::Path::new(&file);
        let pem = std::fs::read(path)
            .map_err(|e| err("SSL_CERT_FILE", path, format!("cannot read: {e}")))?;
        if !CertificateDer::pem_slice_iter(&pem).any(|c| c.is_ok()) {
            return Err(err(
                "SSL_CERT_FILE",
                path,
                "no PEM certificate (BEGIN CERTIFICATE) in it".into(),
            ));
        }
    }
    if let Some(dir) = std::env::var_os("SSL_CERT_DIR").filter(|d| !d.is_empty()) {
        // Like OpenSSL, a list of directories separated by ':'.
        for path in std::env::split_paths(&dir) {
            if !path.is_dir() {
                return Err(err("SSL_CERT_DIR", &path, "not a directory".into()));
            }
        }
    }
    Ok(())
}

/// Whether a failed call's code is the caller's doing (what was asked, by
/// whom, or of a server in the wrong state for it), not a fault of the
/// server or the network: the CLI commands exit 2 on these, 1 on the rest.
pub fn is_caller_code(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::FailedPrecondition
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
    )
}

/// A failed call's message as the CLI prints it. A call the server turned
/// away for its token also says where the token comes from: the server's
/// own words ("missing `authorization: Bearer <token>` metadata") name
/// gRPC metadata, not the CLI's flag.
pub fn call_failure(status: &tonic::Status, token_given: bool) -> String {
    let hint = match (status.code(), token_given) {
        (tonic::Code::Unauthenticated, false) => {
            " (give --token or set EXAMCAP_TOKEN; none was given)"
        }
        (tonic::Code::Unauthenticated, true) => {
            " (the --token or EXAMCAP_TOKEN given is not one the server knows)"
        }
        _ => "",
    };
    format!("{}{hint}", status.message())
}

/// The bearer token of a CLI call: `--token`, else `EXAMCAP_TOKEN`; an
/// empty one is none (`EXAMCAP_TOKEN=` to talk to a server run with
/// `--allow-unauthenticated`), not an empty bearer the server refuses.
pub fn token_or_env(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| std::env::var("EXAMCAP_TOKEN").ok())
        .filter(|t| !t.is_empty())
}

/// `msg` with `authorization: Bearer <token>` when there is a token.
pub fn authed<T>(msg: T, token: Option<&str>) -> Result<Request<T>, ClientError> {
    let mut req = Request::new(msg);
    if let Some(t) = token {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| ClientError::Token)?;
        req.metadata_mut().insert("authorization", value);
    }
    Ok(req)
}

/// Writes a command's output to stdout. A closed pipe (`| head`) is not an
/// error: the reader has what it wanted (and `println!` would panic).
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_codes_are_the_request_the_token_and_the_state() {
        use tonic::Code;
        let callers: Vec<Code> = (0..=16)
            .map(Code::from_i32)
            .filter(|&c| is_caller_code(c))
            .collect();
        assert_eq!(
            callers,
            [
                Code::InvalidArgument,
                Code::NotFound,
                Code::PermissionDenied,
                Code::FailedPrecondition,
                Code::Unauthenticated
            ]
        );
    }

    #[tokio::test]
    async fn an_address_without_a_scheme_is_named() {
        let e = connect("127.0.0.1:50051").await.unwrap_err();
        assert!(e.is_input());
        assert!(e.to_string().contains("expected http://"), "{e}");
    }

    #[test]
    fn an_empty_token_is_no_token() {
        assert_eq!(token_or_env(Some("")), None);
        assert_eq!(token_or_env(Some("abc")).as_deref(), Some("abc"));
    }

    #[test]
    fn a_refused_token_says_where_the_token_comes_from() {
        let missing = tonic::Status::unauthenticated("missing metadata");
        assert_eq!(
            call_failure(&missing, false),
            "missing metadata (give --token or set EXAMCAP_TOKEN; none was given)"
        );
        assert!(call_failure(&missing, true).contains("not one the server knows"));
        let other = tonic::Status::not_found("plan \"x\" not found");
        assert_eq!(call_failure(&other, false), "plan \"x\" not found");
    }

    #[test]
    fn the_token_goes_in_the_authorization_header() {
        let r = authed((), Some("abc")).unwrap();
        assert_eq!(r.metadata().get("authorization").unwrap(), "Bearer abc");
        assert!(authed((), None).unwrap().metadata().is_empty());
        assert!(matches!(authed((), Some("a\nb")), Err(ClientError::Token)));
    }
}
