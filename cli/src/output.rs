//! Where a command's output goes: standard output, or a file (`-o -` is standard output), with
//! progress for the writes of a large input.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;

use crate::fail::{Failure, Result, fail};
use crate::progress::Progress;
use crate::units::Bytes;

/// The writer a command writes its output to.
pub struct Sink<'a> {
    inner: BufWriter<Box<dyn Write + 'a>>,
    written: u64,
    /// Progress to draw as bytes go out, and what is being written (`pprof to out.pb.gz`).
    progress: Option<(&'a Progress, String)>,
}

impl<'a> Sink<'a> {
    fn new(inner: Box<dyn Write + 'a>, progress: Option<(&'a Progress, String)>) -> Self {
        Self {
            inner: BufWriter::with_capacity(1 << 16, inner),
            written: 0,
            progress,
        }
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if let Some((progress, what)) = &self.progress {
            progress.update(|| format!("writing {what}: {}", Bytes(self.written)));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Runs `write` on standard output.
pub fn to_stdout(write: impl FnOnce(&mut Sink<'_>) -> io::Result<()>) -> Result<()> {
    let mut sink = Sink::new(Box::new(io::stdout().lock()), None);
    write(&mut sink)
        .and_then(|()| sink.flush())
        .map_err(stdout_failure)
}

/// Runs `write` on the file `out` (standard output for `-`), writing `what` (a format's name):
/// a `binary` format is not written to a terminal. A file that could not be written whole is
/// removed.
pub fn to_path(
    out: &Path,
    binary: bool,
    progress: &Progress,
    what: &str,
    write: impl FnOnce(&mut Sink<'_>) -> io::Result<()>,
) -> Result<()> {
    if out == Path::new("-") {
        let stdout = io::stdout();
        if stdout.is_terminal() {
            if binary {
                return Err(fail(format!(
                    "not writing {what} (binary) to a terminal: give -o FILE or redirect standard output"
                )));
            }
            // The output itself shows on the terminal: no progress line across it.
            progress.clear();
            return to_stdout(write);
        }
        let shown = progress
            .active()
            .then(|| (progress, format!("{what} to standard output")));
        let mut sink = Sink::new(Box::new(stdout.lock()), shown);
        let outcome = write(&mut sink).and_then(|()| sink.flush());
        progress.clear();
        return outcome.map_err(stdout_failure);
    }
    let name = out.display();
    let file = File::create(out).map_err(|e| fail(format!("cannot write {name}: {e}")))?;
    let short = out.file_name().unwrap_or(out.as_os_str()).to_string_lossy();
    let shown = progress
        .active()
        .then(|| (progress, format!("{what} to {short}")));
    let mut sink = Sink::new(Box::new(&file), shown);
    let outcome = write(&mut sink)
        .and_then(|()| sink.flush())
        .and_then(|()| file.sync_all());
    drop(sink);
    progress.clear();
    outcome.map_err(|e| {
        // Half a file is worse than none.
        let _ = std::fs::remove_file(out);
        fail(format!("cannot write {name}: {e}"))
    })
}

/// The failure for a write to standard output that went wrong.
fn stdout_failure(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::ClosedOutput
    } else {
        fail(format!("cannot write to standard output: {e}"))
    }
}
