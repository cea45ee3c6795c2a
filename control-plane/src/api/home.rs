use axum::extract::State;
use axum::response::Html;

use super::{ApiError, AppState};
use crate::subscription::page;

/// The landing page: the operator's `home/index.html` from the templates
/// directory, else a built-in page saying the server is up and where to go.
pub async fn page(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    page::render_home(state.subscription.templates_dir.as_deref())
        .map(Html)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))
}
