//! Writes run to completion even when their client goes away. Hyper drops
//! a request's future when its connection closes; a store transaction
//! dropped between its statements can leave SQLite's write lock with an
//! idle pooled connection, and every later writer then waits out the busy
//! timeout. On a task of its own the handler finishes whatever happens to
//! the connection; reads need no such care.

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

pub async fn run_to_completion(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime shutting down cancels the task.
        Err(e) => ApiError::Internal(anyhow::anyhow!("request cancelled: {e}")).into_response(),
    }
}
