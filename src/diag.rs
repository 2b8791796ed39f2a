//! One-line messages to stderr that never allocate: formatted on the stack, written with
//! `write(2)`. Used from inside the allocator and from the drain thread, where `eprintln!` could
//! allocate, take the stderr lock, or end up in a test harness's captured output.

use std::fmt;
use std::io::Write as _;

/// Writes `args` and a newline to fd 2 (truncated to 1 KiB). Errors are ignored.
pub(crate) fn stderr_line(args: fmt::Arguments<'_>) {
    let mut buf = [0u8; 1024];
    let len = {
        let mut cursor = std::io::Cursor::new(&mut buf[..1023]);
        let _ = cursor.write_fmt(args);
        cursor.position() as usize
    };
    buf[len] = b'\n';
    // SAFETY: `buf[..=len]` is initialised; fd 2 may be closed, in which case write fails and
    // the message is lost, which is all that can be done.
    unsafe { libc::write(2, buf.as_ptr().cast(), len + 1) };
}
