//! One layer for every matched route: a tracing span named by the route
//! template (not the raw path, which holds usernames and tokens) and the
//! latency histogram.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::Metrics;

/// For `Router::route_layer` (after routing, so the matched path is known).
pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().clone();
    let span = tracing::info_span!("http_request", %method, %route);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    metrics
        .http
        .with_label_values(&[method.as_str(), &route, response.status().as_str()])
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            micros = elapsed.as_micros() as u64,
            "served"
        );
    });
    response
}
