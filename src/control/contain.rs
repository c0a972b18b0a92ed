//! A panic in a control handler is a bug of ours, never the caller's to see as a reset stream: the layer
//! here catches it, logs it with the call's path, and answers `INTERNAL`. The data plane and every other
//! call go on.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context, Poll},
};

use futures_util::FutureExt;

/// Wraps every control service in [`Contained`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainLayer;

impl<S> tower_layer::Layer<S> for ContainLayer {
    type Service = Contained<S>;

    fn layer(&self, inner: S) -> Contained<S> {
        Contained { inner }
    }
}

/// A service whose calls' panics become `INTERNAL` answers.
#[derive(Debug, Clone)]
pub struct Contained<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for Contained<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req)));
        let answer = move |panic: Box<dyn std::any::Any + Send>| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            tracing::error!(call = %path, panic = %what, "a control call panicked; answered INTERNAL");
            let status = tonic::Status::internal(format!(
                "edgefault failed on this call ({path}): a bug, logged by the server; nothing was changed by the \
                 part that failed"
            ));
            Ok(status.into_http())
        };
        match call {
            Ok(fut) => Box::pin(AssertUnwindSafe(fut).catch_unwind().map(move |r| r.unwrap_or_else(answer))),
            Err(panic) => Box::pin(std::future::ready(answer(panic))),
        }
    }
}

#[cfg(test)]
mod tests {
    use tower_layer::Layer;
    use tower_service::Service;

    use super::*;

    #[derive(Clone)]
    struct Panics(bool);

    impl tower_service::Service<http::Request<()>> for Panics {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let in_future = self.0;
            if !in_future {
                panic!("while making the future");
            }
            Box::pin(async { panic!("while answering") })
        }
    }

    #[tokio::test]
    async fn a_panic_is_answered_internal_wherever_it_happens() {
        for in_future in [true, false] {
            let mut svc = ContainLayer.layer(Panics(in_future));
            let req = http::Request::builder().uri("/edgefault.v1.FaultControl/GetStats").body(()).unwrap();
            let resp = svc.call(req).await.unwrap();
            assert_eq!(resp.headers()["grpc-status"], "13", "in the future: {in_future}");
            let message = resp.headers()["grpc-message"].to_str().unwrap();
            assert!(message.contains("GetStats"), "{message}");
        }
    }
}
