//! A message over `max_message_bytes`, answered as RESOURCE_EXHAUSTED.
//!
//! tonic refuses a request, or a response, larger than the limit with
//! OUT_OF_RANGE ("Error, decoded message length too large: ..."). gRPC's own
//! implementations (C core, Java, Go) say RESOURCE_EXHAUSTED, and clients'
//! retry and alerting rules expect that. [`SizeLimitLayer`] rewrites the
//! status where it travels: in the response headers (a refused request gets
//! a trailers-only answer) or in the trailers (a response that outgrew the
//! limit). The message then names the setting and the way round it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tonic::codegen::http::{self, HeaderMap};
use tonic::codegen::Service;
use tonic::{Code, Status};

/// Wraps every service of the server in [`SizeLimit`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SizeLimitLayer;

impl<S> tower_layer::Layer<S> for SizeLimitLayer {
    type Service = SizeLimit<S>;

    fn layer(&self, inner: S) -> SizeLimit<S> {
        SizeLimit { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct SizeLimit<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for SizeLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Body,
{
    type Response = http::Response<Rewritten<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let advice = advice(req.uri().path());
        let answer = self.inner.call(req);
        Box::pin(async move {
            let mut res = answer.await?;
            rewrite(res.headers_mut(), advice);
            Ok(res.map(|body| Rewritten {
                inner: Box::pin(body),
                advice,
            }))
        })
    }
}

/// How a call of `path` can ask for less, where it can.
fn advice(path: &str) -> &'static str {
    match path.rsplit('/').next() {
        Some("GetPlan") => "; GetPlan's week, exam and location filters return part of a plan",
        Some("ListReservations") => "; a smaller page_size returns fewer reservations a page",
        _ => "",
    }
}

/// A response body whose trailers go through [`rewrite`].
pub struct Rewritten<R> {
    inner: Pin<Box<R>>,
    /// From [`advice`], for the trailers.
    advice: &'static str,
}

/// An empty body, for the layers around this one that answer by
/// themselves (the deadline).
impl<R: Default> Default for Rewritten<R> {
    fn default() -> Self {
        Rewritten {
            inner: Box::pin(R::default()),
            advice: "",
        }
    }
}

impl<R: Body> Body for Rewritten<R> {
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<R::Data>, R::Error>>> {
        let advice = self.advice;
        self.inner.as_mut().poll_frame(cx).map(|frame| {
            frame.map(|f| {
                f.map(|mut f| {
                    if let Some(t) = f.trailers_mut() {
                        rewrite(t, advice);
                    }
                    f
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// tonic's words for a message over the limit, both ways.
const TOO_LARGE: &str = "message length too large";

/// Turns tonic's OUT_OF_RANGE for a message over the limit into
/// RESOURCE_EXHAUSTED; every other status is left as it is.
fn rewrite(headers: &mut HeaderMap, advice: &str) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    if status.code() != Code::OutOfRange || !status.message().contains(TOO_LARGE) {
        return;
    }
    let said = Status::resource_exhausted(format!(
        "{} (the server's max_message_bytes{advice})",
        status.message()
    ));
    // Only a message tonic itself wrote fails to encode, and it cannot:
    // the header then stays as tonic set it.
    let _ = said.add_header(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: &Status) -> HeaderMap {
        let mut h = HeaderMap::new();
        status.add_header(&mut h).unwrap();
        h
    }

    #[test]
    fn a_message_over_the_limit_is_resource_exhausted_naming_the_setting() {
        let mut h = headers(&Status::out_of_range(
            "Error, decoded message length too large: found 3886 bytes, the limit is: 2048 bytes",
        ));
        rewrite(
            &mut h,
            advice("/examcap.v1.RegistrationService/ListReservations"),
        );
        let s = Status::from_header_map(&h).unwrap();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("found 3886 bytes"), "{}", s.message());
        assert!(s.message().contains("max_message_bytes"), "{}", s.message());
        // The advice fits the call: page_size here, GetPlan's filters there.
        assert!(s.message().contains("page_size"), "{}", s.message());
        assert!(advice("/examcap.v1.PlanService/GetPlan").contains("filters"));
        assert_eq!(advice("/examcap.v1.ScenarioService/PutScenario"), "");
    }

    #[test]
    fn other_statuses_are_left_alone() {
        for status in [
            Status::out_of_range("week 9 is past the horizon"),
            Status::invalid_argument("message length too large"),
            Status::ok(""),
        ] {
            let mut h = headers(&status);
            let before = h.clone();
            rewrite(&mut h, "");
            assert_eq!(h, before, "{status:?}");
        }
        let mut none = HeaderMap::new();
        rewrite(&mut none, "");
        assert!(none.is_empty());
    }
}
