//! Progress of slow commands (start, restart, reload, stop, delete of several instances; resurrect).
//! While the command runs, a subscription to the daemon's `process:event`s reports each instance that
//! comes online, fails, stops or is deleted. Nothing shows for the first second (a quick command
//! prints exactly what it always did); after that, on a terminal one line on stderr updates in place
//! with each step and is erased at the end; off a terminal (CI logs, pipes) each step is one plain
//! line, nothing redraws. `--silent` shows none.

use super::Ui;
use crate::client::{Client, Subscription};
use serde_json::Value;
use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
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

/// Shows a command's progress until dropped. The subscription is set up on the reporting thread
/// while the command connects; [`Progress::connected`] waits until it is in place, so no step of a
/// request sent after it is missed.
pub(crate) struct Progress {
    /// Told once the command's own connection is up (a first connect that failed because the
    /// command had to start the daemon is tried again then). Dropped to end a thread still waiting.
    go: RefCell<Option<SyncSender<()>>>,
    /// Answers once: the subscription's shutdown handle, or None when there is no subscription.
    ready: RefCell<Option<Receiver<Option<UnixStream>>>>,
    stop: RefCell<Option<UnixStream>>,
    thread: Option<std::thread::JoinHandle<()>>,
    since: Instant,
}

impl Progress {
    /// Starts reporting `steps` of the command `what` (none with `--silent`, or when no daemon runs
    /// once the command has connected: a command that fails its checks starts no daemon for this).
    pub(crate) fn begin(ui: &Ui, what: &'static str, steps: Steps) -> Progress {
        let since = Instant::now();
        let none = || Progress {
            go: RefCell::new(None),
            ready: RefCell::new(None),
            stop: RefCell::new(None),
            thread: None,
            since,
        };
        if ui.silent {
            return none();
        }
        let (go_tx, go_rx) = sync_channel::<()>(1);
        let (ready_tx, ready_rx) = sync_channel::<Option<UnixStream>>(1);
        let home = ui.home.clone();
        let tty = std::io::stderr().is_terminal();
        let tag = ui.paint.cyan("[rpm2]");
        let thread = std::thread::spawn(move || {
            // Only a running daemon: the command starts it when it has to.
            let subscribe = || Client::connect(&home).and_then(|c| c.subscribe(&["process:event"], &[]));
            let sub = subscribe().or_else(|e| match go_rx.recv() {
                Ok(()) => subscribe(),
                Err(_) => Err(e),
            });
            match sub {
                Ok(sub) => {
                    let _ = ready_tx.send(sub.shutdown_handle().ok());
                    report(sub, Reporter { what, steps, tty, tag, since });
                }
                Err(_) => {
                    let _ = ready_tx.send(None);
                }
            }
        });
        Progress {
            go: RefCell::new(Some(go_tx)),
            ready: RefCell::new(Some(ready_rx)),
            stop: RefCell::new(None),
            thread: Some(thread),
            since,
        }
    }

    /// Call once the command's connection is up, before it sends its request: waits (5 s at most)
    /// until the subscription is in place or has failed. Later calls return at once.
    fn connected(&self) {
        if let Some(go) = self.go.borrow_mut().take() {
            let _ = go.try_send(());
        }
        self.settle();
    }

    /// Takes the thread's answer once: the subscription's handle, or none. A thread still waiting
    /// to connect (no `go` any more) gives up and answers none.
    fn settle(&self) {
        if let Some(rx) = self.ready.borrow_mut().take() {
            *self.stop.borrow_mut() = rx.recv_timeout(Duration::from_secs(5)).ok().flatten();
        }
    }
}

/// The command's connection ([`Ui::client`], which starts the daemon when none runs), with
/// `progress` (when the command shows any) in place before the caller sends its request.
pub(crate) fn client_with(ui: &Ui, progress: Option<&Progress>) -> anyhow::Result<Client> {
    let c = ui.client()?;
    if let Some(p) = progress {
        p.connected();
    }
    Ok(c)
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.go.borrow_mut().take();
        self.settle();
        if let Some(s) = self.stop.borrow_mut().take() {
            // The last events may still be on their way: give them a moment once progress shows
            // (a command quicker than QUIET_FOR shows none, so it does not wait).
            if self.since.elapsed() >= QUIET_FOR {
                std::thread::sleep(Duration::from_millis(30));
            }
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Reporter {
    what: &'static str,
    steps: Steps,
    tty: bool,
    tag: String,
    since: Instant,
}

/// One step as people read it: `api:2 online`.
fn step_line(data: &Value, word: &str) -> String {
    let p = &data["process"];
    format!("{}:{} {word}", p["name"].as_str().unwrap_or("?"), p["pm_id"].as_u64().unwrap_or(0))
}

fn report(sub: Subscription, r: Reporter) {
    let mut pending: Vec<String> = Vec::new();
    let mut count = 0usize;
    let mut drawn = false;
    let mut err = std::io::stderr();
    for (topic, data) in sub {
        if topic != "process:event" {
            continue;
        }
        let Some(word) = r.steps.word(&data) else { continue };
        count += 1;
        let line = step_line(&data, word);
        if r.since.elapsed() < QUIET_FOR {
            pending.push(line);
            continue;
        }
        if r.tty {
            let _ = write!(err, "\r\x1b[2K{} {} {count} done, last {line}", r.tag, r.what);
            drawn = true;
        } else {
            for l in pending.drain(..).chain(std::iter::once(line)) {
                let _ = writeln!(err, "{} {l}", r.tag);
            }
        }
        let _ = err.flush();
    }
    if drawn {
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
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
