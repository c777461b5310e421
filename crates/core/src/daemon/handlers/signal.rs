//! Messages to running processes: `signal` (an OS signal) and `send` (an IPC message).

use super::{herr, on_each, HResult, HandlerError};
use crate::daemon::jlist::summary;
use crate::daemon::state::{handle_of, resolve_targets, Daemon};
use crate::protocol::request::{SendParams, SignalParams};
use crate::protocol::ErrorCode;
use crate::supervisor::Op;
use nix::sys::signal::Signal;
use serde_json::json;

/// Reads a signal: a name with or without `SIG` (any case), or a number.
pub(crate) fn parse_signal(s: &str) -> Result<Signal, HandlerError> {
    use std::str::FromStr;
    let up = s.trim().to_ascii_uppercase();
    if let Ok(n) = up.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| herr(ErrorCode::BadRequest, format!("unknown signal {s}")));
    }
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    Signal::from_str(&name)
        .map_err(|_| herr(ErrorCode::BadRequest, format!("unknown signal '{s}': use a name like SIGUSR2 or a number")))
}

/// `signal {signal, targets}`: sends the signal to each target's main process.
pub(super) async fn signal(d: &Daemon, p: SignalParams) -> HResult {
    let sig = parse_signal(&p.signal)?;
    let ids = resolve_targets(d, &p.targets)?;
    on_each(d, &ids, |_| Some(Op::Signal(sig))).await?;
    Ok(summary(d, &ids))
}

/// `send {id, packet}`: writes the packet to process `id` over its IPC channel.
pub(super) async fn send(d: &Daemon, p: SendParams) -> HResult {
    let id = p.id.ok_or_else(|| herr(ErrorCode::BadRequest, "send needs a numeric process id"))?;
    let packet = p.packet;
    if handle_of(d, id).is_none() {
        return Err(herr(ErrorCode::NotFound, format!("no process with id {id}: run `rpm2 list` to see the ids")));
    }
    on_each(d, &[id], |_| Some(Op::Send(packet.clone()))).await?;
    Ok(json!({"success": true, "data": packet}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_short_name_and_number() {
        assert_eq!(parse_signal("SIGUSR2").unwrap(), Signal::SIGUSR2);
        assert_eq!(parse_signal("usr2").unwrap(), Signal::SIGUSR2);
        assert_eq!(parse_signal(" sigterm ").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("HUP").unwrap(), Signal::SIGHUP);
    }

    #[test]
    fn unknown_signals_are_bad_requests() {
        let e = parse_signal("SIGNOPE").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(e.message, "unknown signal 'SIGNOPE': use a name like SIGUSR2 or a number");
        let e = parse_signal("999").unwrap_err();
        assert_eq!(e.message, "unknown signal 999");
        assert_eq!(parse_signal("").unwrap_err().code, ErrorCode::BadRequest);
    }
}
