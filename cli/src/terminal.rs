//! The terminal's size, for lines that must not wrap (progress on stderr, `top`'s frames).

use std::os::fd::AsRawFd;

/// Columns and rows of the terminal behind `fd`, if it is one and says.
pub fn size(fd: &impl AsRawFd) -> Option<(usize, usize)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a `winsize` through the pointer, which points at one; on a
    // descriptor that is not a terminal it fails and writes nothing.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_col > 0 && size.ws_row > 0)
        .then(|| (usize::from(size.ws_col), usize::from(size.ws_row)))
}

/// `line` cut to `width` characters (a cut line ends in `…`).
pub fn fit(line: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if width == 0 || line.chars().count() <= width {
        return line.into();
    }
    let mut cut: String = line.chars().take(width - 1).collect();
    cut.push('…');
    cut.into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_fit() {
        assert_eq!(super::fit("abcdef", 10), "abcdef");
        assert_eq!(super::fit("abcdef", 6), "abcdef");
        assert_eq!(super::fit("abcdef", 4), "abc…");
        assert_eq!(super::fit("äöüßxyz", 3), "äö…");
        assert_eq!(super::fit("abc", 0), "abc");
    }

    #[test]
    fn a_file_has_no_size() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(super::size(&file), None);
    }
}
