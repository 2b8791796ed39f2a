//! Call sites as a report lists them: each raw stack of the aggregate symbolized and split into
//! the allocation plumbing on top and the user stack below it, and the raw sites that share a
//! user stack merged into one site.

use std::collections::HashMap;

use super::aggregate_copy::SiteRow;
use crate::drain::aggregate::Figures;
use crate::symbolize::{Frame, Symbols};

/// A call site's figures after merging the raw sites that share its symbolized user stack
/// (raw stacks can differ in heaptide's frames, in the allocation plumbing on top, such as
/// `alloc` or `alloc_zeroed` for `vec![x; n]` with or without a zero `x`, or in
/// compiler-cloned copies of a function). "Other" sites merge only with "other" sites.
#[derive(Debug, Default)]
pub(super) struct Merged {
    /// The smallest id of the raw sites merged here.
    pub(super) id: u64,
    /// The user stack (the site's key).
    pub(super) frames: Vec<u32>,
    /// The allocation plumbing above it that all the raw sites merged here share.
    pub(super) plumbing: Vec<u32>,
    /// The raw sites merged here.
    pub(super) raw: Vec<u32>,
    /// The label set of the raw sites merged here (`label::table`; 0: none).
    pub(super) label: u32,
    pub(super) fig: Figures,
    /// Call stacks the table merged into the raw "other" sites here.
    pub(super) merged: u64,
}

impl Merged {
    /// The site's frames, innermost first: the plumbing its raw sites share, then the user
    /// stack.
    pub(super) fn stack(&self, symbols: &Symbols) -> Vec<Frame> {
        self.plumbing
            .iter()
            .chain(&self.frames)
            .map(|&id| symbols.frame(id).clone())
            .collect()
    }
}

/// The raw sites `rows` merged by label set and symbolized user stack (at most `depth`
/// frames), in the order each first appears among the raw sites. Every address of the raw
/// stacks must be in `symbols` already (an address that is not counts as no frame).
pub(super) fn merge_sites(rows: &[SiteRow], symbols: &Symbols, depth: usize) -> Vec<Merged> {
    let mut by_stack: HashMap<(u32, Vec<u32>, bool), usize> = HashMap::new();
    let mut merged: Vec<Merged> = Vec::new();
    for s in rows {
        let (plumbing, user) = split_stack(symbols, &s.frames, depth);
        let key = (s.label, user, s.merged > 0);
        let m = match by_stack.get(&key) {
            Some(&m) => {
                keep_common_plumbing(&mut merged[m].plumbing, &plumbing);
                &mut merged[m]
            }
            None => {
                by_stack.insert(key.clone(), merged.len());
                merged.push(Merged {
                    id: u64::from(s.id),
                    label: s.label,
                    frames: key.1,
                    plumbing,
                    ..Merged::default()
                });
                merged.last_mut().expect("just pushed")
            }
        };
        m.id = m.id.min(u64::from(s.id));
        m.raw.push(s.id);
        m.fig.add(&s.fig);
        m.merged += s.merged;
    }
    merged
}

/// The symbolized user stack of a raw one, the key of its call site: frame ids from the
/// frame a person would blame outwards (heaptide's own frames and the standard library's
/// allocation plumbing above it trimmed, see [`split_stack`]), at most `depth` frames.
/// Resolves the addresses `symbols` does not hold yet.
pub(crate) fn user_stack(symbols: &mut Symbols, raw: &[usize], depth: usize) -> Vec<u32> {
    for &ip in raw.iter().filter(|&&ip| ip != 0) {
        symbols.frame_ids(ip);
    }
    split_stack(symbols, raw, depth).1
}

/// A raw stack symbolized and split in two: the standard library's allocation plumbing on
/// top (`alloc`, `alloc_zeroed`, `realloc`, `RawVec::grow_one`, ...; heaptide's own frames
/// above it dropped) and the user stack from the frame a person would blame outwards, at most
/// `depth` frames. The user stack is the site's key: allocations from one line of the
/// program land in one site whichever allocator entry point they went through. A stack made
/// of plumbing only (the standard library allocating for itself) is its own key. Zero
/// addresses (the end-of-stack marker some unwinders give) and heaptide's label wrappers
/// (`symbolize::is_label_frame`) are skipped. Reads the frames
/// `symbols` holds for each address ([`Symbols::cached_frame_ids`]).
fn split_stack(symbols: &Symbols, raw: &[usize], depth: usize) -> (Vec<u32>, Vec<u32>) {
    let mut key: Vec<u32> = Vec::new();
    for &ip in raw.iter().filter(|&&ip| ip != 0) {
        key.extend(
            symbols
                .cached_frame_ids(ip)
                .iter()
                .filter(|&&id| !symbols.is_label(id)),
        );
    }
    let own = key.iter().take_while(|&&id| symbols.is_own(id)).count();
    let plumbing = key[own..]
        .iter()
        .take_while(|&&id| symbols.is_plumbing(id))
        .count();
    if own + plumbing == key.len() {
        key.drain(..own);
        key.truncate(depth);
        return (Vec::new(), key);
    }
    let mut user = key.split_off(own + plumbing);
    user.truncate(depth);
    key.drain(..own);
    (key, user)
}

/// Keeps in `common` the frames adjacent to the user stack that `plumbing` has too (the
/// plumbing every raw stack of a site went through).
fn keep_common_plumbing(common: &mut Vec<u32>, plumbing: &[u32]) {
    let shared = common
        .iter()
        .rev()
        .zip(plumbing.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    common.drain(..common.len() - shared);
}
