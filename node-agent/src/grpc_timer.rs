//! A tower layer timing every gRPC call the control plane makes, by method
//! (`/package.Service/Method`: a fixed set, so a fine label). For streaming
//! responses it times the call up to the response headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::HistogramVec;
use tonic::codegen::http;
use tower::{Layer, Service};

#[derive(Clone)]
pub struct GrpcTimer {
    pub(crate) histogram: HistogramVec,
}

impl<S> Layer<S> for GrpcTimer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            histogram: self.histogram.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    histogram: HistogramVec,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Timed<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let histogram = self.histogram.clone();
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await;
            histogram
                .with_label_values(&[method.as_str()])
                .observe(started.elapsed().as_secs_f64());
            result
        })
    }
}
