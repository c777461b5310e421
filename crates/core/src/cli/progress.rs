//! Progress of slow commands (start, restart, reload, stop, delete of several instances; resurrect).
//! While the command runs, the `process:event`s on its own connection report each instance that
//! comes online, fails, stops or is deleted. Nothing shows for the first second (a quick command
//! prints exactly what it always did); after that, on a terminal one line on stderr updates in place
//! with each step and is erased at the end; off a terminal (CI logs, pipes) each step is one plain
//! line, nothing redraws. `--silent` shows none.

use super::Ui;
use crate::client::Client;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a command runs before its progress shows.
const QUIET_FOR: Duration = Duration::from_secs(1);

/// Which steps a command reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Steps {
    /// start, restart, reload, resurrect: an instance is online, or failed (errored).
    Up,
    /// stop: an instance stopped.
    Stopped,
    /// delete: an instance was deleted.
    Deleted,
}

impl Steps {
    /// The word for a `process:event` when this command reports it (a cluster reload says
    /// `reload` once the new worker is online).
    fn word(self, data: &Value) -> Option<&'static str> {
        let event = data["event"].as_str().unwrap_or("");
        match (self, event) {
            (Steps::Up, "online") => Some("online"),
            (Steps::Up, "reload") if data["process"]["status"] == "online" => Some("online"),
            (_, "errored") => Some("errored"),
            (Steps::Stopped, "stop") => Some("stopped"),
            (Steps::Deleted, "delete") => Some("deleted"),
            _ => None,
        }
    }
}

/// Shows a command's progress until finished (or dropped). It watches the bus on the command's own
/// connection ([`Client::watch_events`]: one more line sent with the command's first request, no
/// extra connection or round trip), and reports the events that arrive while the command waits
/// for its replies.
pub(crate) struct Progress {
    /// None with `--silent`.
    reporter: Option<Arc<Mutex<Reporter>>>,
}

impl Progress {
    /// Starts reporting `steps` of the command `what` (none with `--silent`). Nothing is watched
    /// until [`client_with`] connects.
    pub(crate) fn begin(ui: &Ui, what: &'static str, steps: Steps) -> Progress {
        if ui.silent {
            return Progress { reporter: None };
        }
        let r = Reporter {
            what,
            steps,
            tty: std::io::stderr().is_terminal(),
            tag: ui.paint.cyan("[rpm2]"),
            since: Instant::now(),
            pending: Vec::new(),
            count: 0,
            drawn: false,
            done: false,
        };
        Progress { reporter: Some(Arc::new(Mutex::new(r))) }
    }

    /// Watches `client`'s events for this progress (a failure only means no progress shows).
    fn attach(&self, client: &mut Client) {
        if let Some(r) = &self.reporter {
            let r = r.clone();
            let sink = Box::new(move |topic: &str, data: &Value| {
                if let Ok(mut r) = r.lock() {
                    r.step(topic, data);
                }
            });
            let _ = client.watch_events(&["process:event"], sink);
        }
    }

    /// Ends the progress: once it shows (the command ran past [`QUIET_FOR`]), the last steps may
    /// still be on their way, so `client` is read for a moment more; then the line is erased.
    pub(crate) fn finish(self, client: Option<&mut Client>) {
        let shown = self.reporter.as_ref().and_then(|r| r.lock().ok().map(|r| r.since.elapsed() >= QUIET_FOR));
        if let (Some(true), Some(c)) = (shown, client) {
            c.pump_events(Duration::from_millis(30));
            c.unwatch_events();
        }
    }
}

/// The command's connection ([`Ui::client`], which starts the daemon when none runs), with
/// `progress` (when the command shows any) watching it before the caller sends its request.
pub(crate) fn client_with(ui: &Ui, progress: Option<&Progress>) -> anyhow::Result<Client> {
    let mut c = ui.client()?;
    if let Some(p) = progress {
        p.attach(&mut c);
    }
    Ok(c)
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(Ok(mut r)) = self.reporter.as_ref().map(|r| r.lock()) {
            r.end();
        }
    }
}

struct Reporter {
    what: &'static str,
    steps: Steps,
    tty: bool,
    tag: String,
    since: Instant,
    /// Steps seen in the first [`QUIET_FOR`], shown with the first step after it.
    pending: Vec<String>,
    count: usize,
    /// Whether the terminal line is on screen.
    drawn: bool,
    /// Ended: later events are ignored.
    done: bool,
}

/// One step as people read it: `api:2 online`.
fn step_line(data: &Value, word: &str) -> String {
    let p = &data["process"];
    format!("{}:{} {word}", p["name"].as_str().unwrap_or("?"), p["pm_id"].as_u64().unwrap_or(0))
}

impl Reporter {
    /// Shows one event when it is a step of this command.
    fn step(&mut self, topic: &str, data: &Value) {
        if self.done || topic != "process:event" {
            return;
        }
        let Some(word) = self.steps.word(data) else { return };
        self.count += 1;
        let line = step_line(data, word);
        if self.since.elapsed() < QUIET_FOR {
            self.pending.push(line);
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{} {} {} done, last {line}", self.tag, self.what, self.count);
            self.drawn = true;
        } else {
            for l in self.pending.drain(..).chain(std::iter::once(line)) {
                let _ = writeln!(err, "{} {l}", self.tag);
            }
        }
        let _ = err.flush();
    }

    /// Erases the terminal line; later events are ignored.
    fn end(&mut self) {
        self.done = true;
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_pick_their_events() {
        let ev = |e: &str, status: &str| json!({"event": e, "process": {"name": "api", "pm_id": 2, "status": status}});
        assert_eq!(Steps::Up.word(&ev("online", "online")), Some("online"));
        assert_eq!(Steps::Up.word(&ev("reload", "online")), Some("online"));
        assert_eq!(Steps::Up.word(&ev("reload", "stopped")), None);
        assert_eq!(Steps::Up.word(&ev("stop", "stopped")), None);
        assert_eq!(Steps::Stopped.word(&ev("stop", "stopped")), Some("stopped"));
        assert_eq!(Steps::Deleted.word(&ev("errored", "errored")), Some("errored"));
        let d = ev("online", "online");
        assert_eq!(step_line(&d, "online"), "api:2 online");
    }
}
