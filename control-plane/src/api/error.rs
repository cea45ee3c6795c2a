//! The REST API's one error type: every failure becomes a status code and a
//! JSON `{"detail": ...}` body, as Marzban clients expect.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// 422 with Marzban's flattened shape: `{"detail": {"field": "message"}}`.
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// 429 with `Retry-After` (whole seconds, rounded up).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn forbidden() -> Self {
        Self::Forbidden("You're not allowed".into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("Not found".into()),
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail): (StatusCode, Value) = match &self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, json!(m)),
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, json!(m)),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, json!(m)),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, json!(m)),
            Self::Conflict(m) => (StatusCode::CONFLICT, json!(m)),
            Self::TooManyRequests { message, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, json!(message))
            }
            Self::Validation { field, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, json!({ field: message }))
            }
            Self::Internal(e) => {
                // The cause goes to the log, never to the client.
                tracing::error!(error = ?e, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!("Internal server error"),
                )
            }
        };
        let mut response = (status, Json(json!({ "detail": detail }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::TooManyRequests { retry_after, .. } = &self {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
