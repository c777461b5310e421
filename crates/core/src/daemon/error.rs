//! What a request handler returns: a result or a coded error for people.

use crate::protocol::ErrorCode;
use serde_json::Value;

/// An error for the client: a stable code and a message for people.
#[derive(Debug)]
pub(crate) struct HandlerError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

/// A [`HandlerError`].
pub(crate) fn herr(code: ErrorCode, message: impl Into<String>) -> HandlerError {
    HandlerError { code, message: message.into() }
}

/// What a handler answers: the result, or an error for the client.
pub(crate) type HResult = Result<Value, HandlerError>;
