//! Symbols for return addresses, resolved on the drain side only and cached by address.
//!
//! One address can stand for several frames when functions were inlined; they come out
//! innermost first. Addresses are also classified as heaptide's own (the allocator shim, the
//! sampling path, the unwinder): the leading run of such frames is trimmed off every stack.

use std::collections::HashMap;
use std::sync::Arc;

use crate::report::Frame;

/// The cache.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    frames: HashMap<usize, Arc<[Frame]>>,
    own: HashMap<usize, bool>,
}

impl Symbols {
    /// The frames at `ip`, innermost first (at least one: the raw address if nothing is known).
    pub(crate) fn frames(&mut self, ip: usize) -> Arc<[Frame]> {
        self.frames.entry(ip).or_insert_with(|| resolve(ip)).clone()
    }

    /// Whether `ip` lies in heaptide's own sampling path (or the allocator shim and unwinder
    /// that lead to it), so that it is trimmed from the top of stacks.
    pub(crate) fn is_own(&mut self, ip: usize) -> bool {
        if let Some(&own) = self.own.get(&ip) {
            return own;
        }
        let frames = self.frames(ip);
        let own = frames.iter().all(is_own_frame);
        self.own.insert(ip, own);
        own
    }

    /// Addresses cached.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }
}

fn resolve(ip: usize) -> Arc<[Frame]> {
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
    out.into()
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
