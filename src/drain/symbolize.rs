//! Symbols for return addresses, resolved on the drain side only and cached by address.
//!
//! One address can stand for several frames when functions were inlined; they come out
//! innermost first. Frames are interned, and classified as heaptide's own (the allocator shim,
//! the sampling path, the unwinder): reports trim the leading run of such frames off every
//! stack, frame by frame (in release builds heaptide's code is inlined into the caller's
//! return address), and merge sites whose remaining frames are the same.

use std::collections::HashMap;

use crate::report::Frame;
use crate::sync::{Mutex, MutexGuard};

/// The cache, behind its own lock: reports symbolize without holding the drain lock, so rings
/// keep draining while debug info loads (the first lookup can take a second).
static SYMBOLS: Mutex<Option<Symbols>> = Mutex::new(None);

/// Locks the symbol cache (`None` until first used). Call inside a profiler scope.
pub(crate) fn lock() -> MutexGuard<'static, Option<Symbols>> {
    SYMBOLS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Frames interned: each distinct (function, file, line) once, with its "own frame" verdict.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    by_ip: HashMap<usize, Box<[u32]>>,
    frames: Vec<Frame>,
    own: Vec<bool>,
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

    fn intern(&mut self, frame: Frame) -> u32 {
        if let Some(&id) = self.ids.get(&frame) {
            return id;
        }
        let id = self.frames.len() as u32;
        self.own.push(is_own_frame(&frame));
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
}
