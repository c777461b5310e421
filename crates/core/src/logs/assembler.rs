//! Line assembly: whole lines go on at once, a trailing partial line waits for its end (or
//! [`PARTIAL_FLUSH`] / [`MAX_PARTIAL`]).

use super::*;

/// Holds the end of a chunk that is not a whole line yet, so that formatting and the bus see lines.
#[derive(Debug, Default)]
pub struct LineAssembler {
    pub(super) pending: Vec<u8>,
    pub(super) since: Option<Instant>,
}

impl LineAssembler {
    /// A new, empty assembler.
    pub fn new() -> LineAssembler {
        LineAssembler::default()
    }

    /// Feeds a chunk read from the pipe; returns what can be written now: every whole line (with what
    /// was held before), or a long partial line (past [`MAX_PARTIAL`]). Empty when all is held.
    pub fn push<'a>(&mut self, data: &'a [u8]) -> Cow<'a, [u8]> {
        match data.iter().rposition(|&b| b == b'\n') {
            None => {
                if self.pending.is_empty() {
                    self.since = Some(Instant::now());
                }
                self.pending.extend_from_slice(data);
                if self.pending.len() >= MAX_PARTIAL {
                    Cow::Owned(self.take())
                } else {
                    Cow::Borrowed(&[])
                }
            }
            Some(i) => {
                let (head, tail) = data.split_at(i + 1);
                let out = if self.pending.is_empty() {
                    Cow::Borrowed(head)
                } else {
                    let mut v = std::mem::take(&mut self.pending);
                    v.extend_from_slice(head);
                    Cow::Owned(v)
                };
                self.pending.extend_from_slice(tail);
                self.since = if tail.is_empty() { None } else { Some(Instant::now()) };
                out
            }
        }
    }

    /// When the held partial line must be written ([`PARTIAL_FLUSH`] after it began), if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + PARTIAL_FLUSH)
    }

    /// Takes whatever is held (the flush timeout passed, or the pipe closed).
    pub fn take(&mut self) -> Vec<u8> {
        self.since = None;
        std::mem::take(&mut self.pending)
    }
}
