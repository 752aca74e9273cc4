//! Docker's error answers: a status code and `{"message": "..."}`.
//!
//! Control-API statuses map to the codes Docker gives for the same
//! situation (404 no such object, 409 name in use, 503 not a manager), so a
//! client's error handling works unchanged.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::Code;

/// Docker's words when a node cannot serve cluster requests.
pub const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// An answer other than success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What the client shows its user.
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such object (or endpoint).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// A status from looking up `kind` `id`: Docker's "<kind> <id> not
    /// found" when there is none, else the status as it maps.
    pub fn lookup(status: tonic::Status, kind: &str, id: &str) -> ApiError {
        match status.code() {
            Code::NotFound => ApiError::not_found(format!("{kind} {id} not found")),
            _ => status.into(),
        }
    }

    /// 501: a Docker endpoint Shoal does not serve.
    pub fn not_implemented(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, message)
    }

    /// 500: Shoal failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> ApiError {
        let message = status.message().to_string();
        if message.contains("not a swarm manager") {
            // The control API says it Docker's way, naming its own CLI.
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER);
        }
        let code = match status.code() {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::PermissionDenied | Code::Unauthenticated => StatusCode::FORBIDDEN,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
            // A stale `version`: the object changed since the client read it.
            Code::Aborted => StatusCode::CONFLICT,
            // A locked swarm, or a node in the wrong state (Docker: 503).
            Code::FailedPrecondition => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = message.replace("\"shoal swarm", "\"docker swarm");
        ApiError::new(code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// What every handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_dockers_codes() {
        let e = ApiError::from(tonic::Status::not_found("service web not found"));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "service web not found");
        let e = ApiError::from(tonic::Status::already_exists("name web is in use"));
        assert_eq!(e.status, StatusCode::CONFLICT);
        let e = ApiError::from(tonic::Status::failed_precondition(
            "This node is not a swarm manager. Use \"shoal swarm init\" ...",
        ));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.message, NOT_A_MANAGER);
    }
}
