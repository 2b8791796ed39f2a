//! Progress of long reads and writes, on stderr: shown only when stderr is a terminal and an
//! input is large ([`MIN_BYTES`] or more), as one line redrawn in place and erased when the
//! work is done; nothing otherwise.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Inputs this large or larger get progress lines.
pub const MIN_BYTES: u64 = 4 << 20;

/// Time between redraws of a line.
const EVERY: Duration = Duration::from_millis(100);

/// The progress line of one command.
#[derive(Debug)]
pub struct Progress {
    /// Whether stderr is a terminal.
    terminal: bool,
    /// Whether an input was large enough for progress (its writes then show theirs too).
    active: Cell<bool>,
    /// Whether a line is on the screen.
    shown: Cell<bool>,
    /// When the line was last drawn.
    drawn: Cell<Option<Instant>>,
}

impl Progress {
    /// Progress for this process's stderr, silent unless it is a terminal.
    pub fn on_terminal() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            active: Cell::new(false),
            shown: Cell::new(false),
            drawn: Cell::new(None),
        }
    }

    /// Notes an input of `bytes` bytes; `true` if progress is shown for it (and from then on).
    pub fn input(&self, bytes: u64) -> bool {
        if self.terminal && bytes >= MIN_BYTES {
            self.active.set(true);
        }
        self.active.get()
    }

    /// Whether progress is shown.
    pub fn active(&self) -> bool {
        self.active.get()
    }

    /// Draws the line `line()` says, unless one was drawn less than [`EVERY`] ago.
    pub fn update(&self, line: impl FnOnce() -> String) {
        if !self.active.get() || self.drawn.get().is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.draw(&line());
    }

    /// Draws `line` now (the start of a step).
    pub fn say(&self, line: &str) {
        if self.active.get() {
            self.draw(line);
        }
    }

    fn draw(&self, line: &str) {
        let stderr = std::io::stderr();
        let width = crate::terminal::size(&stderr).map_or(80, |(columns, _)| columns);
        let line = format!("heaptide: {line}");
        let line = crate::terminal::fit(&line, width.saturating_sub(1));
        // Progress is a courtesy: a failed write to the terminal changes nothing.
        let _ = write!(stderr.lock(), "\r\x1b[K{line}");
        self.shown.set(true);
        self.drawn.set(Some(Instant::now()));
    }

    /// Erases the line (before the output or an error message).
    pub fn clear(&self) {
        if self.shown.replace(false) {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
