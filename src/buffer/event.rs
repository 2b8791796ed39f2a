//! What a sampling thread tells the drain, and how a ring slot or an overflow node holds it.

use std::mem::MaybeUninit;
use std::ptr;

/// Label set ids are below this (`label::table` keeps at most this many sets).
pub(crate) const LABEL_SETS: usize = 256;

/// Deepest stack a user can ask for (`HEAPTIDE_DEPTH`).
pub(crate) const MAX_DEPTH: usize = 64;
/// Extra frames captured for heaptide's own frames on top of the stack, trimmed by the drain.
pub(crate) const OWN_FRAMES: usize = 8;
/// Frame slots in one event.
pub(crate) const FRAME_SLOTS: usize = MAX_DEPTH + OWN_FRAMES;

/// One sample event, read as a [`Record`].
///
/// Allocation and free are paired by id (unique for the life of the process), never by
/// address, so the drain may see them in either order and address reuse cannot confuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// A sampled block came to life (fresh allocation, or the new side of a realloc).
    Alloc {
        id: u64,
        /// CLOCK_MONOTONIC nanoseconds.
        time_ns: u64,
        /// The user's size in bytes.
        size: u64,
        /// The `heaptide::testing` scope that tracked this allocation (0: none). A tracked
        /// allocation was recorded with certainty, so it weighs exactly itself.
        scope: u64,
        /// The label set the allocating thread had (`label::table`; 0: none; below
        /// [`LABEL_SETS`]).
        label: u32,
        /// Return addresses, innermost first (at most [`FRAME_SLOTS`] are kept).
        frames: &'a [usize],
    },
    /// A sampled block died (free, or the old side of a realloc).
    Free {
        id: u64,
        /// CLOCK_MONOTONIC nanoseconds.
        time_ns: u64,
    },
}

/// Which [`Record`] an [`Event`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Alloc,
    Free,
}

/// A [`Record`] as a ring slot or an overflow node stores it: room for an allocation's
/// [`FRAME_SLOTS`] frames, of which [`Event::write`] writes only what the record uses. A free
/// writes its kind, id and time, and leaves the allocation's fields as they were (uninitialised,
/// or an older event's); an allocation writes those, its size, scope, label and depth, and its `depth`
/// frames, not the other slots. [`Event::record`] reads back only what the kind and depth say
/// was written. So a sampled free stores three fields into its ring slot instead of a whole
/// 616-byte event, and an allocation copies its frames once, from the capture buffer
/// ([`Frames`]) into the slot.
///
/// The fields are private and only [`Event::write`] sets them, so in every `Event` the fields
/// its `kind` (and, for an allocation, its `depth`) name are initialised.
#[derive(Clone, Copy)]
pub(crate) struct Event {
    kind: Kind,
    id: u64,
    time_ns: u64,
    /// Frames written. This and the fields below belong to an allocation: a free leaves them
    /// as they were (uninitialised, or an older event's), and nothing reads them.
    depth: MaybeUninit<u16>,
    size: MaybeUninit<u64>,
    scope: MaybeUninit<u64>,
    label: MaybeUninit<u32>,
    /// Return addresses, innermost first: the first `depth` are initialised.
    frames: [MaybeUninit<usize>; FRAME_SLOTS],
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.record().fmt(f)
    }
}

impl Event {
    /// Writes `record` into `*dst`, field by field: only the fields its kind uses, and of the
    /// frames only the first `frames.len()` (at most [`FRAME_SLOTS`]; more are cut off). Any
    /// other bytes of `*dst` are left as they were.
    ///
    /// # Safety
    /// `dst` is valid for writes of an `Event` and properly aligned; its old contents need not
    /// be initialised. Afterwards `*dst` is an initialised `Event` holding `record`.
    #[inline]
    pub(crate) unsafe fn write(dst: *mut Event, record: &Record<'_>) {
        // SAFETY: per the caller, every field pointer below is in bounds of `*dst`, aligned, and
        // valid for writes; raw field pointers (`&raw mut`) make no reference to the possibly
        // uninitialised `Event`. The frames copied lie in `frames[..n]` with `n <= FRAME_SLOTS`,
        // and the source slice cannot overlap `*dst` (a `&[usize]` and a place being written).
        unsafe {
            match *record {
                Record::Free { id, time_ns } => {
                    (&raw mut (*dst).kind).write(Kind::Free);
                    (&raw mut (*dst).id).write(id);
                    (&raw mut (*dst).time_ns).write(time_ns);
                }
                Record::Alloc {
                    id,
                    time_ns,
                    size,
                    scope,
                    label,
                    frames,
                } => {
                    let n = frames.len().min(FRAME_SLOTS);
                    (&raw mut (*dst).kind).write(Kind::Alloc);
                    (&raw mut (*dst).id).write(id);
                    (&raw mut (*dst).time_ns).write(time_ns);
                    (&raw mut (*dst).depth).write(MaybeUninit::new(n as u16));
                    (&raw mut (*dst).size).write(MaybeUninit::new(size));
                    (&raw mut (*dst).scope).write(MaybeUninit::new(scope));
                    (&raw mut (*dst).label).write(MaybeUninit::new(label));
                    ptr::copy_nonoverlapping(
                        frames.as_ptr(),
                        (&raw mut (*dst).frames).cast::<usize>(),
                        n,
                    );
                }
            }
        }
    }

    /// An event holding `record` (built in place; the unused fields stay uninitialised).
    #[cfg(test)]
    pub(crate) fn new(record: &Record<'_>) -> Event {
        let mut event = MaybeUninit::<Event>::uninit();
        // SAFETY: `event` is valid for writes and aligned; `write` initialises it.
        unsafe {
            Event::write(event.as_mut_ptr(), record);
            event.assume_init()
        }
    }

    /// What this event holds: only the fields its kind uses, and only the frames written.
    #[inline]
    pub(crate) fn record(&self) -> Record<'_> {
        match self.kind {
            Kind::Free => Record::Free {
                id: self.id,
                time_ns: self.time_ns,
            },
            // SAFETY: an `Alloc` event was made by `write` (the fields are private), which set
            // `depth`, `size`, `scope` and `label` and the first `depth` frames (`depth <= FRAME_SLOTS`);
            // `MaybeUninit<usize>` has the layout of `usize`.
            Kind::Alloc => unsafe {
                let depth = usize::from(self.depth.assume_init());
                Record::Alloc {
                    id: self.id,
                    time_ns: self.time_ns,
                    size: self.size.assume_init(),
                    scope: self.scope.assume_init(),
                    label: self.label.assume_init(),
                    frames: std::slice::from_raw_parts(self.frames.as_ptr().cast::<usize>(), depth),
                }
            },
        }
    }
}

/// A return-address buffer the stack capture fills (`sample::capture`): [`FRAME_SLOTS`]
/// slots, left uninitialised until written, and how many of them are.
pub(crate) struct Frames {
    len: usize,
    slots: [MaybeUninit<usize>; FRAME_SLOTS],
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl Frames {
    /// An empty buffer (nothing written to its slots).
    #[inline(always)]
    pub(crate) const fn new() -> Self {
        Self {
            len: 0,
            slots: [MaybeUninit::uninit(); FRAME_SLOTS],
        }
    }

    /// Appends a return address; `false` (and nothing written) if all slots are used.
    #[inline(always)]
    pub(crate) fn push(&mut self, address: usize) -> bool {
        let Some(slot) = self.slots.get_mut(self.len) else {
            return false;
        };
        slot.write(address);
        self.len += 1;
        true
    }

    /// Addresses pushed so far.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Forgets the addresses pushed (the slots are not touched).
    #[cfg_attr(
        not(heaptide_frame_pointers),
        allow(dead_code, reason = "only a failed frame-pointer walk starts over")
    )]
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// The addresses pushed, in order.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[usize] {
        // SAFETY: `push` initialised the first `len` slots (`len <= FRAME_SLOTS`), and
        // `MaybeUninit<usize>` has the layout of `usize`.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<usize>(), self.len) }
    }
}

/// A heap node carrying an event that found its ring full (or its thread without one), in any
/// sampling mode: an allocation's, or a free recorded through [`crate::alloc`]'s secured room
/// (the old side of a realloc, a tracked block outside the range).
#[derive(Debug)]
pub(crate) struct OverflowNode {
    next: *mut OverflowNode,
    pub(crate) event: Event,
}

impl OverflowNode {
    /// Layout of a node, for the backend's raw allocation.
    pub(crate) const LAYOUT: std::alloc::Layout = std::alloc::Layout::new::<OverflowNode>();
}

// SAFETY: `set_next`/`next` touch only the `next` field.
unsafe impl super::stack::Node for OverflowNode {
    unsafe fn set_next(this: *mut Self, next: *mut Self) {
        // SAFETY: the caller owns `this`.
        unsafe { (*this).next = next }
    }
    unsafe fn next(this: *const Self) -> *mut Self {
        // SAFETY: the caller owns `this`.
        unsafe { (*this).next }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Events written over one another, as a ring slot is reused: each reads back exactly what
    /// was written last, and a free over an allocation shows no trace of it. (Under miri this
    /// also checks that no uninitialised byte is read.)
    #[test]
    fn a_slot_reads_back_the_last_record_written() {
        let frames: Vec<usize> = (1..=FRAME_SLOTS + 5).map(|i| i * 16).collect();
        let mut slot = MaybeUninit::<Event>::uninit();
        let records = [
            Record::Free { id: 1, time_ns: 10 },
            Record::Alloc {
                id: 2,
                time_ns: 20,
                size: 48,
                scope: 7,
                label: 3,
                frames: &frames[..3],
            },
            Record::Free { id: 3, time_ns: 30 },
            Record::Alloc {
                id: 4,
                time_ns: 40,
                size: 1 << 20,
                scope: 0,
                label: 0,
                frames: &frames[..0],
            },
            Record::Alloc {
                id: 5,
                time_ns: 50,
                size: 8,
                scope: 0,
                label: 255,
                frames: &frames,
            },
        ];
        for record in &records {
            // SAFETY: `slot` is valid for writes and aligned.
            let event = unsafe {
                Event::write(slot.as_mut_ptr(), record);
                slot.assume_init_ref()
            };
            match (*record, event.record()) {
                (Record::Alloc { frames: long, .. }, Record::Alloc { frames: kept, .. })
                    if long.len() > FRAME_SLOTS =>
                {
                    assert_eq!(kept, &long[..FRAME_SLOTS], "cut to the slots");
                }
                (want, got) => assert_eq!(got, want),
            }
            assert_eq!(Event::new(record).record(), event.record());
        }
    }

    /// The size `buffer::queues` gives for a ring slot.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_event_is_616_bytes() {
        assert_eq!(size_of::<Event>(), 616);
    }

    #[test]
    fn frames_keep_what_fits() {
        let mut frames = Frames::new();
        assert!(frames.as_slice().is_empty());
        for i in 0..FRAME_SLOTS {
            assert!(frames.push(i + 1));
        }
        assert!(!frames.push(0), "no slot left");
        assert_eq!(frames.len(), FRAME_SLOTS);
        assert_eq!(frames.as_slice()[FRAME_SLOTS - 1], FRAME_SLOTS);
    }
}
