//! API errors: the OpenAI error JSON (`{"error": {message, type, param, code}}`) or, on the
//! Anthropic route, Anthropic's (`{"type": "error", "error": {type, message}}`), with the right
//! HTTP status.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Anthropic,
}

#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    pub flavor: Flavor,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), param: None, code: None, flavor: Flavor::OpenAi, retry_after: None }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn param(mut self, p: &str) -> ApiError {
        self.param = Some(p.to_string());
        self
    }
    pub fn code(mut self, c: &'static str) -> ApiError {
        self.code = Some(c);
        self
    }
    pub fn flavor(mut self, f: Flavor) -> ApiError {
        self.flavor = f;
        self
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Incorrect API key provided. Pass it as 'Authorization: Bearer KEY'.").code("invalid_api_key")
    }
    pub fn overloaded(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message).code("rate_limit_exceeded");
        e.retry_after = Some(1);
        e
    }

    fn openai_type(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::NOT_FOUND => "invalid_request_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    fn anthropic_type(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::SERVICE_UNAVAILABLE => "overloaded_error",
            s if s.is_server_error() => "api_error",
            _ => "invalid_request_error",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        match self.flavor {
            Flavor::OpenAi => json!({"error": {"message": self.message, "type": self.openai_type(), "param": self.param, "code": self.code}}),
            Flavor::Anthropic => json!({"type": "error", "error": {"type": self.anthropic_type(), "message": self.message}}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert("retry-after", HeaderValue::from(s));
        }
        r
    }
}

impl From<crate::engine::SubmitError> for ApiError {
    fn from(e: crate::engine::SubmitError) -> ApiError {
        use crate::engine::SubmitError as S;
        match e {
            S::QueueFull(_) => ApiError::overloaded(e.to_string()),
            S::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            S::PromptTooLong { .. } => ApiError::bad_request(e.to_string()).param("messages").code("context_length_exceeded"),
            S::TooLargeForPool => ApiError::bad_request(e.to_string()).param("max_tokens").code("context_length_exceeded"),
            S::Sampling(_) | S::ZeroMaxTokens => ApiError::bad_request(e.to_string()).code("invalid_value"),
            S::EmptyPrompt | S::BadToken(_) => ApiError::bad_request(e.to_string()),
        }
    }
}
