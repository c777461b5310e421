//! The stable error codes of daemon replies (`{"error":{"code":"...","message":"..."}}`).

use serde::{Deserialize, Serialize};

/// Why the daemon refused or failed a request. Serialized as the snake_case strings below, which
/// are part of the wire contract: clients (the CLI, `index.js`) branch on them, so a code is never
/// renamed. The message that goes with it is for people and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// `not_found`: no process, name or namespace matches the target (or an app named in `scale`
    /// does not exist). The user should check the ids and names with `rpm2 list`.
    NotFound,
    /// `bad_request`: the request itself is wrong: malformed JSON, an unknown method, a missing or
    /// invalid parameter (no target, an unknown signal, a bad instance count, `hello` not sent
    /// first). The user should fix the command line or the app declaration.
    BadRequest,
    /// `version_mismatch`: the client and the running daemon speak different protocol versions.
    /// The user should run `rpm2 update` to restart the daemon with the installed version.
    VersionMismatch,
    /// `internal`: the daemon's own state is unusable (a poisoned lock, an app that vanished, a
    /// value that cannot be encoded). Not the user's fault: see the daemon log and report it.
    Internal,
    /// `failed`: a control (stop, restart, delete, signal, send, ...) reached a process's supervisor
    /// and the supervisor refused or failed it; the message says why.
    Failed,
    /// `reload_failed`: a rolling reload stopped at an instance that did not come up; the
    /// instances not yet reloaded keep running the old version. Check the app's error log.
    ReloadFailed,
    /// `already_running`: `start` of an app whose name already runs. Use `rpm2 restart NAME`, or
    /// `-f` to start another copy.
    AlreadyRunning,
    /// `start_failed`: every process of a `start` failed to spawn (bad script, interpreter, cwd).
    StartFailed,
    /// `nothing_to_do`: the request would change nothing (e.g. `scale` to the current count).
    NothingToDo,
    /// `empty`: `dump` with no app running would replace a non-empty saved list; use `--force`.
    Empty,
    /// `io`: a file the daemon writes (the app table, the dump) could not be written; the message
    /// names the file. Check the disk and the permissions of `RPM2_HOME`.
    Io,
    /// `not_running`: no daemon answers (made by clients, never sent by the daemon).
    NotRunning,
    /// `connection`: the connection to the daemon failed or closed (made by clients, never sent by
    /// the daemon).
    Connection,
    /// `bad_config`: an app declaration or an ecosystem file is invalid (made by the client's
    /// start/operate flow before anything is sent); the message names the file, the app and the field.
    BadConfig,
    /// `closed`: a subscription (`launchBus`, logs) ended because the daemon went away (made by
    /// clients).
    Closed,
    /// `timeout`: processes did not answer in time (a `trigger` action with no `axm:reply` within
    /// 10 s); the message names them. Check that the app answers its action.
    Timeout,
    /// Any code this build does not know (a newer daemon): read the message.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// Every known code, in declaration order ([`ErrorCode::Other`] excluded): the list `index.d.ts`
    /// types as `ErrorCode` (a unit test keeps the two equal).
    #[cfg(test)]
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::NotFound,
        ErrorCode::BadRequest,
        ErrorCode::VersionMismatch,
        ErrorCode::Internal,
        ErrorCode::Failed,
        ErrorCode::ReloadFailed,
        ErrorCode::AlreadyRunning,
        ErrorCode::StartFailed,
        ErrorCode::NothingToDo,
        ErrorCode::Empty,
        ErrorCode::Io,
        ErrorCode::NotRunning,
        ErrorCode::Connection,
        ErrorCode::BadConfig,
        ErrorCode::Closed,
        ErrorCode::Timeout,
    ];

    /// The code as it goes on the wire, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::Internal => "internal",
            ErrorCode::Failed => "failed",
            ErrorCode::ReloadFailed => "reload_failed",
            ErrorCode::AlreadyRunning => "already_running",
            ErrorCode::StartFailed => "start_failed",
            ErrorCode::NothingToDo => "nothing_to_do",
            ErrorCode::Empty => "empty",
            ErrorCode::Io => "io",
            ErrorCode::NotRunning => "not_running",
            ErrorCode::Connection => "connection",
            ErrorCode::BadConfig => "bad_config",
            ErrorCode::Closed => "closed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Other => "other",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_strings() {
        for c in ErrorCode::ALL {
            let s = serde_json::to_value(c).unwrap();
            assert_eq!(s, serde_json::Value::String(c.as_str().into()));
            let back: ErrorCode = serde_json::from_value(s).unwrap();
            assert_eq!(back, c);
        }
        assert_eq!(serde_json::from_str::<ErrorCode>("\"brand_new\"").unwrap(), ErrorCode::Other);
    }

    /// index.d.ts types `RPM2Error.code` with the same list, so the JS API cannot drift.
    #[test]
    fn index_d_ts_lists_every_code() {
        let dts = include_str!("../../../../index.d.ts");
        let start = dts.find("type ErrorCode =").expect("index.d.ts declares type ErrorCode");
        let decl = &dts[start..start + dts[start..].find(';').expect("ErrorCode ends with ;")];
        let listed: Vec<&str> = decl.split('\'').skip(1).step_by(2).collect();
        let ours: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours, "index.d.ts's ErrorCode must list ErrorCode::ALL in order");
    }
}
