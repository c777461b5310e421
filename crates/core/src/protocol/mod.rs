//! The client ⇄ daemon protocol: newline-delimited JSON over `RPM2_HOME/rpc.sock`.
//!
//! A request is `{"id":N,"method":"...","params":{...}}`; a reply is `{"id":N,"result":...}` or
//! `{"id":N,"error":{"code":"...","message":"..."}}`. A subscription keeps sending
//! `{"id":N,"event":{...}}` until the client closes. The first exchange is always `hello`, carrying
//! [`PROTOCOL_VERSION`]; a mismatch is refused with code `version_mismatch`.
//!
//! This module is the whole contract in typed form: the framing ([`Request`], [`Response`]), every
//! method and its params ([`Method`]), the error codes ([`ErrorCode`]) and the process object of
//! `list`/`describe` ([`Pm2Process`]).

pub mod error;
pub mod process;
pub mod request;

pub use error::ErrorCode;
pub use process::{Monit, Pm2Env, Pm2Process};
pub use request::Method;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version. Bumped on any incompatible change of a method's params or result.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the daemon accepts (bytes). Longer lines are refused and the connection closed.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// One request from a client, as framed on the wire. The daemon turns `method` and `params` into a
/// typed [`Method`] with [`Request::typed`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Correlates replies; chosen by the client.
    pub id: u64,
    /// The method name, e.g. `start`, `list`, `stop`.
    pub method: String,
    /// Method parameters (an object; `null` when none).
    #[serde(default)]
    pub params: Value,
}

impl Request {
    /// The typed method of this request (its params parsed leniently, see [`request`]); an unknown
    /// method is a `bad_request` with the message `unknown method 'NAME'`.
    pub fn typed(&self) -> Result<Method, (ErrorCode, String)> {
        Method::parse(&self.method, self.params.clone())
    }
}

/// An error carried in a reply: a stable machine code and a message for people.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// Stable code, one of [`ErrorCode`]'s strings: `not_found`, `bad_request`, ...
    pub code: String,
    /// One line that says what failed and what to do.
    pub message: String,
}

/// One reply line from the daemon. `R` is how a reader takes the result: a [`Value`] (the
/// default), or `Box<RawValue>` to keep its JSON text as it came.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Response<R = Value> {
    /// The id of the request this answers.
    pub id: u64,
    /// The result, on success.
    #[serde(skip_serializing_if = "Option::is_none", default = "none")]
    pub result: Option<R>,
    /// The error, on failure.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ErrorBody>,
    /// A subscription event.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event: Option<Value>,
}

/// `None`, the default of an absent `result` whatever its type.
fn none<R>() -> Option<R> {
    None
}

impl Response {
    /// A success reply.
    pub fn ok(id: u64, result: Value) -> Response {
        Response { id, result: Some(result), ..Default::default() }
    }
    /// An error reply.
    pub fn err(id: u64, code: ErrorCode, message: impl Into<String>) -> Response {
        let error = ErrorBody { code: code.as_str().into(), message: message.into() };
        Response { id, error: Some(error), ..Default::default() }
    }
    /// A subscription event.
    pub fn event(id: u64, event: Value) -> Response {
        Response { id, event: Some(event), ..Default::default() }
    }
    /// A success reply whose result is JSON text already written, as one JSON line (newline
    /// included): the same line [`Response::ok`] gives for the parsed value.
    pub fn ok_line_raw(id: u64, result: &serde_json::value::RawValue) -> Vec<u8> {
        Response { id, result: Some(result), error: None, event: None }.to_line()
    }
}

impl<R: Serialize> Response<R> {
    /// The reply as one JSON line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_result_is_the_same_line_as_its_value() {
        let v = serde_json::json!([{"pid": 1, "name": "ünï \"q\"", "monit": {"cpu": 0.5, "memory": 7}}]);
        let raw = serde_json::value::to_raw_value(&v).unwrap();
        assert_eq!(Response::ok_line_raw(9, &raw), Response::ok(9, v.clone()).to_line());
        // And a reader taking the result as raw text gets that text back.
        let back: Response<Box<serde_json::value::RawValue>> =
            serde_json::from_slice(&Response::ok(9, v.clone()).to_line()).unwrap();
        assert_eq!(back.result.unwrap().get(), serde_json::to_string(&v).unwrap());
    }

    #[test]
    fn response_round_trip() {
        let r = Response::err(7, ErrorCode::NotFound, "no app named x");
        let line = r.to_line();
        assert_eq!(*line.last().unwrap(), b'\n');
        let back: Response = serde_json::from_slice(&line).unwrap();
        assert_eq!(back.id, 7);
        assert_eq!(back.error.unwrap().code, "not_found");
        assert!(back.result.is_none());
    }

    #[test]
    fn request_without_params() {
        let r: Request = serde_json::from_str(r#"{"id":1,"method":"ping"}"#).unwrap();
        assert_eq!(r.method, "ping");
        assert!(r.params.is_null());
    }
}
