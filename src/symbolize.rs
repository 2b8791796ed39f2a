//! Symbols for return addresses, resolved on the drain side only and cached by address.
//!
//! One address can stand for several frames when functions were inlined; they come out
//! innermost first. Frames are interned and classified twice:
//!
//! - heaptide's own (the allocator shim, the sampling path, the unwinder): reports trim the
//!   leading run of such frames off every stack, frame by frame (in release builds heaptide's
//!   code is inlined into the caller's return address);
//! - the standard library's plumbing ([`is_plumbing_frame`]): by source file (the toolchain's
//!   `library/` sources), which works whatever the names look like, or by name where there is
//!   no file. The leading run of plumbing is not part of a call site's key: allocations from
//!   one line of the program through `alloc`, `alloc_zeroed` or `realloc` are one site.
//!
//! Also what a frame is ([`Frame`]), which frames of a stack a person would blame
//! ([`from_blamed`], [`shown_stack`]) and how a frame reads ([`short_frame`]): reports, the leak
//! detector's alerts and `heaptide::testing` all show frames.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::sync::{Mutex, MutexGuard};

// === frames ===

/// One stack frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Frame {
    /// Demangled function name without the hash (or the address, if unknown).
    pub function: String,
    /// Source file, if debug info has it.
    pub file: Option<String>,
    /// Line, if debug info has it.
    pub line: Option<u32>,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.function)?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " ({file}:{line})"),
            (Some(file), None) => write!(f, " ({file})"),
            _ => Ok(()),
        }
    }
}

/// A stack from the frame a person would blame: without the allocation plumbing on top
/// (the standard library's frames, by source file or by name: `alloc::`, `core::`, `std::`,
/// ...; see `is_plumbing_frame`). The whole stack if every frame is
/// plumbing. Every view that names "who allocated this" starts here.
pub(crate) fn from_blamed(frames: &[Frame]) -> &[Frame] {
    let start = frames
        .iter()
        .position(|f| !is_plumbing_frame(f))
        .unwrap_or(0);
    &frames[start..]
}

/// The part of a site's stack a profile or flame graph shows: from the blamed frame (the allocation
/// plumbing above it left out) to the program's outermost frame (the start-up frames below
/// it left out: see `symbolize::is_start_up` and the module docs). A stack without a frame of the
/// program's keeps its frames but the C start-up ones.
pub(crate) fn shown_stack(frames: &[Frame]) -> &[Frame] {
    let from = from_blamed(frames);
    let user = from.iter().rposition(|f| !is_plumbing_frame(f));
    let end = match user {
        Some(i) => i + 1,
        None => from
            .iter()
            .rposition(|f| !is_start_up(f))
            .map_or(from.len(), |i| i + 1),
    };
    &from[..end]
}

/// A frame as a person reads it: the function, then the file shortened by [`short_path`] and
/// the line.
pub(crate) fn short_frame(frame: &Frame) -> impl fmt::Display + '_ {
    struct Short<'a>(&'a Frame);
    impl fmt::Display for Short<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0.function)?;
            match (&self.0.file, self.0.line) {
                (Some(file), Some(line)) => write!(f, " ({}:{line})", short_path(file)),
                (Some(file), None) => write!(f, " ({})", short_path(file)),
                _ => Ok(()),
            }
        }
    }
    Short(frame)
}

/// A source path as a person reads it:
/// - the standard library: `/rustc/<hash>/library/std/src/x.rs` -> `library/std/src/x.rs`;
/// - a registry crate:
///   `~/.cargo/registry/src/index.crates.io-<hash>/serde-1.0.1/src/x.rs` -> `serde-1.0.1/src/x.rs`;
/// - a git dependency: `~/.cargo/git/checkouts/<repo>-<hash>/<rev>/src/x.rs` -> `<repo>/src/x.rs`;
/// - under the current directory (the package, when run by cargo): relative to it;
/// - anything else as it is.
pub(crate) fn short_path(path: &str) -> Cow<'_, str> {
    if let Some(rest) = path.strip_prefix("/rustc/")
        && let Some((_hash, inside)) = rest.split_once('/')
    {
        return Cow::Borrowed(inside);
    }
    if let Some((_, rest)) = path.split_once("/.cargo/registry/src/")
        && let Some((_index, inside)) = rest.split_once('/')
    {
        return Cow::Borrowed(inside);
    }
    if let Some((_, rest)) = path.split_once("/.cargo/git/checkouts/")
        && let Some((repo, inside)) = rest.split_once('/')
        && let Some((_rev, file)) = inside.split_once('/')
    {
        let repo = repo.rsplit_once('-').map_or(repo, |(name, _hash)| name);
        return Cow::Owned(format!("{repo}/{file}"));
    }
    // Only an absolute path can lie under the working directory.
    if path.starts_with('/')
        && let Ok(dir) = std::env::current_dir()
        && let Some(dir) = dir.to_str()
        && let Some(inside) = path.strip_prefix(dir)
        && let Some(inside) = inside.strip_prefix('/')
    {
        return Cow::Owned(inside.to_string());
    }
    Cow::Borrowed(path)
}

// === the cache ===

/// The cache, behind its own lock: reports symbolize without holding the drain lock, so rings
/// keep draining while debug info loads (the first lookup can take a second).
static SYMBOLS: Mutex<Option<Symbols>> = Mutex::new(None);

/// Locks the symbol cache (`None` until first used). Call inside a profiler scope.
pub(crate) fn lock() -> MutexGuard<'static, Option<Symbols>> {
    SYMBOLS.lock()
}

/// Frames interned: each distinct (function, file, line) once, with its "own frame" verdict.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    by_ip: HashMap<usize, Box<[u32]>>,
    frames: Vec<Frame>,
    own: Vec<bool>,
    plumbing: Vec<bool>,
    /// Whether each frame is a label wrapper ([`is_label_frame`]).
    label: Vec<bool>,
    ids: HashMap<Frame, u32>,
    /// An address was resolved since [`take_resolved_new`](Self::take_resolved_new) last ran.
    resolved_new: bool,
}

impl Symbols {
    /// The frames at `ip`, innermost first, as interned ids (at least one: the raw address if
    /// nothing is known).
    pub(crate) fn frame_ids(&mut self, ip: usize) -> &[u32] {
        if !self.by_ip.contains_key(&ip) {
            self.resolved_new = true;
            let ids: Box<[u32]> = resolve(ip).into_iter().map(|f| self.intern(f)).collect();
            self.by_ip.insert(ip, ids);
        }
        &self.by_ip[&ip]
    }

    /// The frames at `ip` as [`frame_ids`](Self::frame_ids) resolved them, without resolving:
    /// empty if `ip` was never resolved.
    pub(crate) fn cached_frame_ids(&self, ip: usize) -> &[u32] {
        self.by_ip.get(&ip).map_or(&[], |ids| ids)
    }

    fn intern(&mut self, frame: Frame) -> u32 {
        if let Some(&id) = self.ids.get(&frame) {
            return id;
        }
        let id = self.frames.len() as u32;
        self.own.push(is_own_frame(&frame));
        self.plumbing.push(is_plumbing_frame(&frame));
        self.label.push(is_label_frame(&frame));
        self.frames.push(frame.clone());
        self.ids.insert(frame, id);
        id
    }

    /// Whether an address was resolved since the last call (which resets it).
    pub(crate) fn take_resolved_new(&mut self) -> bool {
        std::mem::take(&mut self.resolved_new)
    }

    /// An interned frame.
    pub(crate) fn frame(&self, id: u32) -> &Frame {
        &self.frames[id as usize]
    }

    /// Whether an interned frame belongs to heaptide's sampling path (the allocator shim,
    /// the sampling code, the unwinder): such frames are trimmed off the top of stacks.
    pub(crate) fn is_own(&self, id: u32) -> bool {
        self.own[id as usize]
    }

    /// Whether an interned frame is one of heaptide's label wrappers (see [`is_label_frame`]).
    pub(crate) fn is_label(&self, id: u32) -> bool {
        self.label[id as usize]
    }

    /// Whether an interned frame is the standard library's allocation plumbing or
    /// heaptide's own (see [`is_plumbing_frame`]).
    pub(crate) fn is_plumbing(&self, id: u32) -> bool {
        self.plumbing[id as usize]
    }

    /// Addresses cached.
    pub(crate) fn len(&self) -> usize {
        self.by_ip.len()
    }
}

fn resolve(ip: usize) -> Vec<Frame> {
    let mut out = Vec::new();
    // `resolve` looks up `ip - 1` itself (a return address points after the call).
    backtrace::resolve(ip as *mut std::ffi::c_void, |symbol| {
        let function = match symbol.name() {
            Some(name) => format!("{name:#}"),
            None => format!("{ip:#x}"),
        };
        out.push(Frame {
            function,
            file: symbol.filename().map(|p| p.display().to_string()),
            line: symbol.lineno(),
        });
    });
    if out.is_empty() {
        out.push(Frame {
            function: format!("{ip:#x}"),
            file: None,
            line: None,
        });
    }
    out
}

/// A frame of the sampling machinery: by name, or by source file (with
/// `debug = "line-tables-only"`, inlined frames carry only short names like `capture`).
fn is_own_frame(frame: &Frame) -> bool {
    const OWN_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");
    is_own_function(&frame.function)
        || frame
            .file
            .as_deref()
            .is_some_and(|f| f.starts_with(OWN_SRC) || f.contains("/backtrace-0."))
}

/// Whether a frame is one of heaptide's label wrappers (`heaptide::label`, `label_guard`, the
/// `Labelled` future's `poll`), which sit between the program's frames wherever it labels;
/// reports leave them out of stacks, so labelling code does not change its call stacks.
fn is_label_frame(frame: &Frame) -> bool {
    const LABEL_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/label/");
    let f = frame.function.as_str();
    f.starts_with("heaptide::label::")
        || f.starts_with("<heaptide::label::")
        || frame
            .file
            .as_deref()
            .is_some_and(|file| file.starts_with(LABEL_SRC))
}

/// Whether a frame is one a person skips when asking "who allocated this": heaptide's own, or
/// the standard library's, known by its source file ([`is_std_source`]: this works with any
/// debug-info level that has files, where inlined frames carry short names such as `alloc`,
/// `allocate` or `new<[u8; 4096]>`) or, without a file (no debug info: names from the symbol
/// table, which are full paths), by its name ([`is_plumbing`]); also the process's start-up
/// frames ([`is_start_up`]).
pub(crate) fn is_plumbing_frame(frame: &Frame) -> bool {
    is_plumbing(&frame.function)
        || is_own_frame(frame)
        || frame.file.as_deref().is_some_and(is_std_source)
        || is_start_up(frame)
}

/// Whether a source file is part of the Rust toolchain's standard library, whatever the
/// toolchain's version: the paths rustup's toolchains record (`/rustc/<commit hash>/library/..`),
/// those of the `rust-src` component or of a toolchain built locally
/// (`.../lib/rustlib/src/rust/library/alloc/src/..`, `.../library/std/src/..`), and the
/// standard library's own dependencies (`/rust/deps/hashbrown-0.15.2/src/..`; older toolchains:
/// `/cargo/registry/src/<index>/hashbrown-0.14.3/src/..`).
pub(crate) fn is_std_source(file: &str) -> bool {
    const LIBRARY: [&str; 3] = [
        "library/alloc/src/",
        "library/core/src/",
        "library/std/src/",
    ];
    let in_library = |p: &str| {
        file.match_indices(p)
            .any(|(i, _)| i == 0 || file.as_bytes()[i - 1] == b'/')
    };
    (file.starts_with("/rustc/") && file.contains("/library/"))
        || LIBRARY.iter().any(|p| in_library(p))
        || file.starts_with("/rust/deps/")
        || file.contains("/hashbrown-")
}

/// Whether a frame is the C library's process or thread start-up (`_start`,
/// `__libc_start_main`, `start_thread`, `clone3`, ...), the `main` rustc generates, or an
/// unwinder's end-of-stack marker; which every stack shares.
pub(crate) fn is_start_up(f: &Frame) -> bool {
    let name = f.function.as_str();
    match name {
        // rustc's shim has no source file, unlike a program's `main` built with line tables.
        "main" => f.file.is_none(),
        "0x0" | "_start" | "start_thread" | "clone" | "clone3" | "__clone" | "__clone3" => true,
        _ => name.starts_with("__libc_start"),
    }
}

/// Functions that belong to the sampling machinery rather than to the program.
pub(crate) fn is_own_function(name: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "heaptide::",
        "<heaptide::",
        "backtrace::",
        "<backtrace::",
        "_Unwind_",
        "__rg_",
    ];
    const SHIMS: [&str; 5] = [
        "__rust_alloc",
        "__rust_alloc_zeroed",
        "__rust_realloc",
        "__rust_dealloc",
        "__rdl_",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || SHIMS.iter().any(|s| name.contains(s))
}

/// Functions a person skips when asking "who allocated this": the standard library's
/// allocation plumbing and collection internals, including trait impls of standard traits for
/// primitive or standard types (`<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem`).
/// A user type's impl of a standard trait (`<my::Cache as core::clone::Clone>::clone`) is not
/// plumbing.
pub(crate) fn is_plumbing(name: &str) -> bool {
    const STD: [&str; 5] = ["alloc::", "core::", "std::", "hashbrown::", "__rust"];
    if STD.iter().any(|p| name.starts_with(p)) || is_own_function(name) {
        return true;
    }
    let Some(qualified) = name.strip_prefix('<') else {
        return false;
    };
    // `<Type as Trait>::method` or `<Type>::method`
    let (ty, tr) = match qualified.split_once(" as ") {
        Some((ty, rest)) => (ty, Some(rest)),
        None => (qualified.split('>').next().unwrap_or(qualified), None),
    };
    let ty = ty
        .trim_start_matches(['<', '&', '*', '['])
        .trim_start_matches("mut ")
        .trim_start_matches("const ");
    if STD.iter().any(|p| ty.starts_with(p)) {
        return true;
    }
    // A primitive or generic parameter has no path in its name.
    let primitive = !ty.split(['<', '>']).next().unwrap_or(ty).contains("::");
    match tr {
        // Only the standard library has inherent impls on primitives.
        None => primitive,
        Some(t) => primitive && STD.iter().any(|p| t.starts_with(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_paths() {
        assert_eq!(
            short_path(
                "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/serde-1.0.219/src/de/mod.rs"
            ),
            "serde-1.0.219/src/de/mod.rs"
        );
        assert_eq!(
            short_path(
                "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/alloc/src/vec/mod.rs"
            ),
            "library/alloc/src/vec/mod.rs"
        );
        assert_eq!(
            short_path("/home/u/.cargo/git/checkouts/tokio-4e1c1f2a3b/9f8e7d6/tokio/src/lib.rs"),
            "tokio/tokio/src/lib.rs"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "getcwd: miri's isolation refuses it")]
    fn paths_under_the_working_directory_are_relative() {
        let here = std::env::current_dir().unwrap();
        let file = format!("{}/src/lib.rs", here.display());
        assert_eq!(short_path(&file), "src/lib.rs");
        assert_eq!(short_path("/elsewhere/x.rs"), "/elsewhere/x.rs");
        assert_eq!(short_path("src/x.rs"), "src/x.rs");
    }

    #[test]
    fn classification() {
        assert!(is_own_function("heaptide::alloc::sample_alloc"));
        assert!(is_own_function("__rustc::__rust_alloc"));
        assert!(!is_own_function("alloc::raw_vec::RawVec<T>::grow_one"));
        assert!(is_plumbing("alloc::raw_vec::RawVec<T>::grow_one"));
        assert!(is_plumbing(
            "<alloc::vec::Vec<T> as core::clone::Clone>::clone"
        ));
        assert!(!is_plumbing("demo::leak_slowly"));
        assert!(is_plumbing(
            "<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem"
        ));
        assert!(is_plumbing(
            "<alloc::boxed::Box<str> as core::convert::From<&str>>::from"
        ));
        assert!(is_plumbing(
            "<T as alloc::vec::spec_from_elem::SpecFromElem>::from_elem"
        ));
        assert!(is_plumbing("<[u8]>::to_vec"));
        assert!(!is_plumbing("<demo::Cache as core::clone::Clone>::clone"));
        assert!(!is_plumbing("<demo::Cache>::insert"));
    }

    fn frame(function: &str, file: Option<&str>) -> Frame {
        Frame {
            function: function.to_string(),
            file: file.map(str::to_string),
            line: Some(1),
        }
    }

    #[test]
    fn standard_library_sources() {
        for std in [
            "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/alloc/src/alloc.rs",
            "/rustc/0123/library/std/src/sys/backtrace.rs",
            "/rustc/0123/library/test/src/lib.rs",
            "/root/.rustup/toolchains/nightly-x86_64-unknown-linux-gnu/lib/rustlib/src/rust/library/alloc/src/boxed.rs",
            "/home/me/rust/library/core/src/ops/function.rs",
            "library/alloc/src/alloc.rs",
            "/rust/deps/hashbrown-0.15.2/src/raw/mod.rs",
            "/cargo/registry/src/index.crates.io-6f17d22bba15001f/hashbrown-0.14.3/src/map.rs",
        ] {
            assert!(is_std_source(std), "{std}");
        }
        for user in [
            "/work/app/src/main.rs",
            "src/alloc.rs",
            "/work/app/mylibrary/alloc/src/x.rs",
            "/rustc-app/src/main.rs",
        ] {
            assert!(!is_std_source(user), "{user}");
        }
    }

    #[test]
    fn plumbing_by_file_whatever_the_name() {
        // Inlined frames of a `debug = "line-tables-only"` build: short names.
        let lib = "/rustc/0123/library/alloc/src/boxed.rs";
        for name in ["alloc", "allocate", "box_new_uninit", "new<[u8; 4096]>"] {
            assert!(is_plumbing_frame(&frame(name, Some(lib))), "{name}");
        }
        assert!(!is_plumbing_frame(&frame(
            "hold_pages",
            Some("/app/src/main.rs")
        )));
        assert!(!is_plumbing_frame(&frame("main", Some("/app/src/main.rs"))));
        // No debug info: names from the symbol table.
        assert!(is_plumbing_frame(&frame(
            "alloc::alloc::exchange_malloc",
            None
        )));
        assert!(!is_plumbing_frame(&frame("app::hold_pages", None)));
        // Start-up: rustc's `main` shim has no file.
        assert!(is_plumbing_frame(&frame("main", None)));
        assert!(is_plumbing_frame(&frame(
            "__libc_start_main_impl",
            Some("../csu/libc-start.c")
        )));
        assert!(is_plumbing_frame(&frame("_start", None)));
    }
}
