//! Atomic, private, symlink-safe file writes into the dump directory.
//!
//! - The directory is opened once per dump with `O_DIRECTORY | O_NOFOLLOW`: if its last path
//!   component is a symbolic link the dump is refused (with an error that says so, of the kind
//!   the system gave: `ENOTDIR` on Linux, `ELOOP` elsewhere) rather than written wherever the
//!   link points. Links in earlier components are followed as usual.
//! - Each file is created under a hidden temporary name (`.heaptide-<pid>-<seq>.<ext>.<n>.tmp`)
//!   with `openat(O_CREAT | O_EXCL | O_NOFOLLOW)` and mode 0600 (set again with `fchmod`, so
//!   the umask cannot change it), written completely, `fsync`ed, then `renameat`ed to its final
//!   name. `rename` replaces the directory entry: a symlink planted at the final name is
//!   replaced, never followed, so nothing outside the directory is written.
//! - On any error the temporary file is unlinked and the error returned: no partial file ever
//!   appears under a final name.

use crate::sync::{AtomicU64, Ordering};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// Mode of every dump file.
pub(crate) const FILE_MODE: u32 = 0o600;

/// An open dump directory.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// Opens `path` as a directory without following a symlink in its last component. The
    /// path is normalised first (`link/` and `link/.` name `link` itself, which a trailing
    /// slash or `.` would otherwise have the kernel resolve), and a path ending in `..` is
    /// refused (it names the parent of whatever the component before it points to).
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let normalised: std::path::PathBuf = path.components().collect();
        if matches!(
            normalised.components().next_back(),
            Some(std::path::Component::ParentDir)
        ) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it ends in `..`, which may lead through a symbolic link (name the directory itself)",
            ));
        }
        let path = normalised.as_path();
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: `c_path` is NUL-terminated; the returned descriptor is checked below.
        let fd = unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let err = io::Error::last_os_error();
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            if is_link {
                return Err(io::Error::new(
                    err.kind(),
                    "it is a symbolic link, which heaptide does not follow (name the directory it points to)",
                ));
            }
            return Err(err);
        }
        // SAFETY: `fd` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Dir { fd })
    }

    /// Writes `bytes` as the file `name` in this directory, atomically (see the module docs).
    pub(crate) fn write_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let final_name = c_name(name)?;
        let (temp_name, file) = self.create_temp(name)?;
        let result = write_sync(file, bytes).and_then(|()| self.rename(&temp_name, &final_name));
        if result.is_err() {
            self.unlink(&temp_name);
        }
        result
    }

    /// Removes the file `name` (used to roll back a dump that failed half-way). Errors are
    /// ignored: there is nothing better to do.
    pub(crate) fn remove(&self, name: &str) {
        if let Ok(name) = c_name(name) {
            self.unlink(&name);
        }
    }

    /// Makes the renames durable (`fsync` on the directory). Best effort: errors are ignored.
    pub(crate) fn sync(&self) {
        // SAFETY: `fd` is an open descriptor we own.
        unsafe { libc::fsync(self.fd.as_raw_fd()) };
    }

    /// Creates a fresh temporary file for `name`, mode 0600, never through a symlink.
    fn create_temp(&self, name: &str) -> io::Result<(CString, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut attempts = 0;
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp_name = c_name(&format!(".{name}.{n}.tmp"))?;
            // SAFETY: `self.fd` is an open directory, `temp_name` is NUL-terminated; the mode
            // argument is what O_CREAT expects (promoted to c_uint as for a variadic call).
            let fd = unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    temp_name.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    FILE_MODE as libc::c_uint,
                )
            };
            if fd < 0 {
                let err = io::Error::last_os_error();
                // A leftover of an earlier process with the same pid: try the next name.
                if err.raw_os_error() == Some(libc::EEXIST) && attempts < 16 {
                    attempts += 1;
                    continue;
                }
                return Err(err);
            }
            // SAFETY: `fd` is a descriptor we just opened and own.
            let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            // The umask may have taken bits away from 0600 (never added any): set it exactly.
            if let Err(err) = file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE)) {
                drop(file);
                self.unlink(&temp_name);
                return Err(err);
            }
            return Ok((temp_name, file));
        }
    }

    fn rename(&self, from: &CStr, to: &CStr) -> io::Result<()> {
        let dir = self.fd.as_raw_fd();
        // SAFETY: both names are NUL-terminated and relative to the open directory `dir`.
        if unsafe { libc::renameat(dir, from.as_ptr(), dir, to.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn unlink(&self, name: &CStr) {
        // SAFETY: `name` is NUL-terminated and relative to the open directory; unlinkat does not
        // follow a symlink (it removes the entry itself).
        unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) };
    }
}

/// Writes everything and flushes it to the disk, then closes the file.
fn write_sync(mut file: File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

/// A plain file name (no `/`, no NUL) as a C string.
fn c_name(name: &str) -> io::Result<CString> {
    if name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file name contains a slash",
        ));
    }
    CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file name contains a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "heaptide-file-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "file system calls (openat, renameat) miri does not emulate"
    )]
    fn writes_atomically_with_mode_0600() {
        let path = scratch("write");
        let dir = Dir::open(&path).unwrap();
        dir.write_atomic("a.txt", b"hello").unwrap();
        dir.write_atomic("a.txt", b"again").unwrap();
        dir.sync();
        assert_eq!(std::fs::read(path.join("a.txt")).unwrap(), b"again");
        let meta = std::fs::metadata(path.join("a.txt")).unwrap();
        assert_eq!(meta.mode() & 0o777, FILE_MODE);
        assert_eq!(names(&path), ["a.txt"], "no temporary file left");
        dir.remove("a.txt");
        assert!(names(&path).is_empty());
        std::fs::remove_dir(&path).unwrap();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "file system calls (openat, renameat) miri does not emulate"
    )]
    fn replaces_a_symlink_at_the_final_name() {
        let path = scratch("link");
        let outside = path.with_extension("victim");
        std::fs::write(&outside, b"untouched").unwrap();
        std::os::unix::fs::symlink(&outside, path.join("b.json")).unwrap();
        Dir::open(&path)
            .unwrap()
            .write_atomic("b.json", b"{}")
            .unwrap();
        let meta = std::fs::symlink_metadata(path.join("b.json")).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(std::fs::read(&outside).unwrap(), b"untouched");
        std::fs::remove_file(&outside).unwrap();
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "file system calls (openat, renameat) miri does not emulate"
    )]
    fn refuses_a_symlinked_directory() {
        let path = scratch("dirlink");
        let link = path.with_extension("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = Dir::open(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // A trailing slash or `.` does not get through (the kernel would follow the link).
        for spelled in ["/", "/.", "/./", "//"] {
            let mut p = link.clone().into_os_string();
            p.push(spelled);
            let err = Dir::open(Path::new(&p)).unwrap_err();
            assert!(
                err.to_string().contains("symbolic link"),
                "{spelled}: {err}"
            );
        }
        let mut p = link.clone().into_os_string();
        p.push("/..");
        assert!(Dir::open(Path::new(&p)).is_err(), "`link/..` is refused");
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir(&path).unwrap();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "file system calls (openat, renameat) miri does not emulate"
    )]
    fn bad_names_and_missing_dirs_are_errors() {
        let path = scratch("names");
        let dir = Dir::open(&path).unwrap();
        assert!(dir.write_atomic("x/y", b"").is_err());
        assert!(dir.write_atomic("x\0y", b"").is_err());
        // A directory in the way of the final name: the rename fails, the temp file goes.
        std::fs::create_dir(path.join("d")).unwrap();
        assert!(dir.write_atomic("d", b"data").is_err());
        assert_eq!(names(&path), ["d"]);
        assert!(Dir::open(&path.join("missing")).is_err());
        std::fs::remove_dir_all(&path).unwrap();
    }
}
