//! The gRPC deadline, answered as DEADLINE_EXCEEDED.
//!
//! tonic stops a call whose `grpc-timeout` runs out and reports it as
//! CANCELLED ("Timeout expired"), which tells a client its own side gave
//! up. [`DeadlineLayer`] sits just inside tonic's timeout and answers
//! DEADLINE_EXCEEDED a little earlier: the part of the deadline that
//! [`crate::api::deadline_margin`] keeps back, halved, so that handlers
//! which watch the deadline themselves (Solve, RunDrill, Reschedule) still
//! answer first with their own message. As with tonic's timeout, only the
//! handler's answer is timed, not a stream it returns.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::codegen::http;
use tonic::codegen::Service;
use tonic::Status;

use crate::api::{deadline_margin, parse_grpc_timeout};

/// Wraps every service of the server in [`Deadline`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> tower_layer::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
}

/// How long a call with `timeout` may take before it is answered with
/// DEADLINE_EXCEEDED here.
pub fn answer_within(timeout: Duration) -> Duration {
    timeout.saturating_sub(deadline_margin(timeout) / 2)
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let answer = self.inner.call(req);
        Box::pin(async move {
            let Some(timeout) = timeout else {
                return answer.await;
            };
            match tokio::time::timeout(answer_within(timeout), answer).await {
                Ok(r) => r,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the call did not finish within its deadline of {timeout:?}"
                ))
                .into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    /// A handler that answers after `after` (never, if `None`).
    #[derive(Clone)]
    struct Handler {
        after: Option<Duration>,
    }

    impl Service<http::Request<()>> for Handler {
        type Response = http::Response<String>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<Result<http::Response<String>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let after = self.after;
            Box::pin(async move {
                match after {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
                Ok(http::Response::new("answer".to_string()))
            })
        }
    }

    fn call(
        after: Option<Duration>,
        timeout: Option<&str>,
    ) -> impl Future<Output = http::Response<String>> {
        let mut svc = tower_layer::Layer::layer(&DeadlineLayer, Handler { after });
        let mut req = http::Request::new(());
        if let Some(t) = timeout {
            req.headers_mut().insert("grpc-timeout", t.parse().unwrap());
        }
        let answer = svc.call(req);
        async move { answer.await.unwrap() }
    }

    fn grpc_status(r: &http::Response<String>) -> Option<&str> {
        r.headers().get("grpc-status").map(|v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_is_answered_deadline_exceeded() {
        let t0 = tokio::time::Instant::now();
        let r = call(None, Some("20m")).await;
        assert_eq!(grpc_status(&r), Some("4"), "{r:?}");
        assert!(r.body().is_empty());
        let waited = t0.elapsed();
        assert!(
            waited >= answer_within(Duration::from_millis(20)),
            "{waited:?}"
        );
        // An expired deadline, too.
        assert_eq!(grpc_status(&call(None, Some("0n")).await), Some("4"));
    }

    #[tokio::test]
    async fn a_call_within_its_deadline_or_without_one_is_untouched() {
        let r = call(Some(Duration::from_millis(1)), Some("10S")).await;
        assert_eq!((grpc_status(&r), r.body().as_str()), (None, "answer"));
        let r = call(Some(Duration::from_millis(30)), None).await;
        assert_eq!((grpc_status(&r), r.body().as_str()), (None, "answer"));
        // A malformed header is no deadline (as tonic reads it).
        let r = call(Some(Duration::from_millis(30)), Some("5x")).await;
        assert_eq!(r.body(), "answer");
    }

    #[test]
    fn the_layer_answers_after_the_handlers_margin_and_before_tonic() {
        for ms in [0, 1, 5, 10, 100, 10_000, 100_000] {
            let t = Duration::from_millis(ms);
            let handler = t.saturating_sub(deadline_margin(t));
            assert!(handler <= answer_within(t), "{ms} ms");
            assert!(answer_within(t) <= t, "{ms} ms");
            if ms > 0 {
                assert!(answer_within(t) < t, "{ms} ms");
            }
        }
    }
}
