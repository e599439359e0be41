//! The error answer every route gives: a status and `{"error": "…"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tend_wire::model::ErrorBody;

use super::store::StoreError;

/// An error answer: a status and `{"error": "…"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// The HTTP status.
    status: StatusCode,
    /// The message for the client.
    message: String,
}

impl ApiError {
    /// An error answer.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// 422: a body that parsed but fails validation.
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message })).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "central store failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("storage error: {error}"))
    }
}
