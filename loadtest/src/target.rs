//! Where the load goes. A load test aimed at the wrong host is an attack on
//! it, so only loopback servers are accepted unless `--allow-remote` is given.

use std::net::IpAddr;

use tonic::transport::Uri;

/// Why a `--server` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("--server: {url:?} is not a URL like http://127.0.0.1:50051: {reason}")]
    Invalid { url: String, reason: String },
    #[error("--server: scheme {0:?} is not http or https")]
    Scheme(String),
    #[error(
        "--server: {0:?} is not a loopback address (127.0.0.0/8, ::1, localhost); \
         pass --allow-remote to load a remote server"
    )]
    NotLoopback(String),
}

/// Whether `host` (as in a URI, IPv6 in brackets) is this machine.
pub fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks `--server`: a valid http(s) URL with a host, and loopback unless
/// `allow_remote`.
pub fn check_server(url: &str, allow_remote: bool) -> Result<Uri, TargetError> {
    let invalid = |reason: &str| TargetError::Invalid {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url.parse().map_err(|e| invalid(&format!("{e}")))?;
    let scheme = uri.scheme_str().ok_or_else(|| invalid("no scheme"))?;
    if scheme != "http" && scheme != "https" {
        return Err(TargetError::Scheme(scheme.to_string()));
    }
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    if !allow_remote && !is_loopback(host) {
        return Err(TargetError::NotLoopback(host.to_string()));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_pass() {
        for url in [
            "http://127.0.0.1:50051",
            "http://127.1.2.3:1",
            "http://localhost:50051",
            "https://LOCALHOST",
            "http://[::1]:50051",
        ] {
            assert!(check_server(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn remote_servers_need_allow_remote() {
        for url in [
            "http://10.0.0.5:50051",
            "http://[2001:db8::1]:50051",
            "http://examcap.example:50051",
            "http://127.0.0.1.example:50051",
            "http://0.0.0.0:50051",
        ] {
            let host = url.parse::<Uri>().unwrap().host().unwrap().to_string();
            assert_eq!(
                check_server(url, false),
                Err(TargetError::NotLoopback(host)),
                "{url}"
            );
            assert!(check_server(url, true).is_ok(), "{url}");
        }
    }

    #[test]
    fn malformed_urls_are_refused_even_with_allow_remote() {
        assert_eq!(
            check_server("ftp://127.0.0.1", true),
            Err(TargetError::Scheme("ftp".into()))
        );
        assert!(matches!(
            check_server("127.0.0.1:50051", true),
            Err(TargetError::Invalid { .. })
        ));
        assert!(matches!(
            check_server("http://", true),
            Err(TargetError::Invalid { .. })
        ));
    }
}
