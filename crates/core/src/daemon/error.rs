//! What a request handler returns: a result or a coded error for people.

use crate::protocol::ErrorCode;
use serde_json::value::RawValue;
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

/// A handler's result: a JSON value, or JSON text already written (the process lists, serialized
/// straight from their typed [`crate::protocol::Pm2Process`] form, with no [`Value`] tree built).
/// Both go on the wire the same way; a client cannot tell them apart.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A value, serialized with the reply.
    Value(Value),
    /// Valid JSON text, copied into the reply as it is.
    Json(Box<RawValue>),
}

impl Answer {
    /// The answer as a [`Value`] (parses [`Answer::Json`]; for tests and in-process callers).
    #[cfg(test)]
    pub(crate) fn into_value(self) -> Value {
        match self {
            Answer::Value(v) => v,
            Answer::Json(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
        }
    }
}

/// What a handler of a process list answers: [`Answer`] or an error for the client.
pub(crate) type AResult = Result<Answer, HandlerError>;
