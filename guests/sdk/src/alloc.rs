//! The guests' global allocator: power-of-two size classes (16 B to 2 KiB) with one free list each, carved from
//! 64 KiB slabs of the system allocator (wasi-libc's dlmalloc), which also serves larger or over-aligned requests.
//!
//! Why: a plugin call allocates and frees hundreds of small blocks (every decoded `String`, `Vec`, map node), and
//! dlmalloc's bookkeeping (bins, coalescing, headers) was 15-22 % of the rules plugin's time on a small network
//! (`perf` with wasmtime's perf map: `dlmalloc`, `dlfree`, `malloc`, `free`), the largest cost that native code does
//! not share. Here an allocation is a free-list pop (or a bump) and a free is a push. Freed blocks are kept for
//! their class and never coalesced: an instance's memory is bounded by its peak use per class, and the host's
//! memory cap still applies (a failed slab allocation is an allocation failure, which traps).
//!
//! Guests are single-threaded (`wasm32-wasip2` has no threads), so the state needs no lock. The type is also built
//! natively, for its unit tests, as a plain value.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;
use std::alloc::System;

/// Smallest class: 16 bytes (`1 << MIN_SHIFT`), also the largest alignment served from the classes.
const MIN_SHIFT: u32 = 4;
/// 16, 32, ..., 2048 bytes.
const CLASSES: usize = 8;
/// Bytes requested from the system allocator at a time.
const SLAB: usize = 64 << 10;

/// The allocator (see the module documentation).
pub struct SizeClasses {
    state: UnsafeCell<State>,
}

struct State {
    /// Heads of the free lists; a free block's first word points to the next.
    free: [*mut u8; CLASSES],
    /// The unused part of the current slab.
    bump: *mut u8,
    end: *mut u8,
}

// SAFETY: the allocator is only shared where there is one thread: as the global allocator of a `wasm32-wasip2`
// guest (no threads exist), and as a local value in single-threaded tests. Nothing hands it to another thread.
#[allow(unsafe_code)]
unsafe impl Sync for SizeClasses {}

impl Default for SizeClasses {
    fn default() -> Self {
        Self::new()
    }
}

impl SizeClasses {
    pub const fn new() -> Self {
        SizeClasses {
            state: UnsafeCell::new(State {
                free: [null_mut(); CLASSES],
                bump: null_mut(),
                end: null_mut(),
            }),
        }
    }
}

/// The class of `layout`, or `None` for the system allocator (too large, or aligned above 16).
fn class(layout: Layout) -> Option<usize> {
    if layout.align() > 1 << MIN_SHIFT {
        return None;
    }
    let size = layout.size().max(1 << MIN_SHIFT);
    let shift = usize::BITS - (size - 1).leading_zeros();
    let c = (shift - MIN_SHIFT) as usize;
    (c < CLASSES).then_some(c)
}

fn class_size(c: usize) -> usize {
    1 << (c as u32 + MIN_SHIFT)
}

#[allow(unsafe_code)]
// SAFETY (the trait's contract): blocks of a class are `class_size` bytes, at least the requested size, 16-aligned
// (slabs are 16-aligned and every class size is a multiple of 16), and handed out once until freed; everything else
// is the system allocator's.
unsafe impl GlobalAlloc for SizeClasses {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            // SAFETY: forwarded with the caller's (non-zero-size) layout.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded (see the `Sync` impl), and no other reference to the state is live.
        let st = unsafe { &mut *self.state.get() };
        let head = st.free[c];
        if !head.is_null() {
            // SAFETY: `head` is a freed block of this class; its first word was written by `dealloc`.
            st.free[c] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let size = class_size(c);
        if (st.end as usize) - (st.bump as usize) < size {
            // SAFETY: SLAB is non-zero and 16 is a power of two.
            let slab = unsafe { System.alloc(Layout::from_size_align_unchecked(SLAB, 1 << MIN_SHIFT)) };
            if slab.is_null() {
                return null_mut();
            }
            // The old slab's tail (under 2 KiB) is left unused.
            st.bump = slab;
            // SAFETY: one past the end of the slab just allocated.
            st.end = unsafe { slab.add(SLAB) };
        }
        let p = st.bump;
        // SAFETY: `size` bytes fit between `bump` and `end` (checked above).
        st.bump = unsafe { p.add(size) };
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class(layout) {
            // SAFETY: `ptr` came from `System.alloc` with this layout (same class decision in `alloc`).
            None => unsafe { System.dealloc(ptr, layout) },
            Some(c) => {
                // SAFETY: single-threaded; `ptr` is a live block of class `c` (at least 16 bytes, 16-aligned), now
                // given back, so its first word may hold the list link.
                let st = unsafe { &mut *self.state.get() };
                unsafe { ptr.cast::<*mut u8>().write(st.free[c]) };
                st.free[c] = ptr;
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, does not overflow isize.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new)) {
            // The block already has room for the new size.
            (Some(a), Some(b)) if a == b => ptr,
            // SAFETY: both layouts are the system allocator's; forwarded unchanged.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: a fresh block for `new`; the old one is valid for `layout.size()` bytes and is freed
                // after the copy of the bytes both hold.
                unsafe {
                    let fresh = self.alloc(new);
                    if !fresh.is_null() {
                        core::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    fresh
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn sizes_map_to_the_smallest_class_that_holds_them() {
        assert_eq!(class(layout(1, 1)), Some(0));
        assert_eq!(class(layout(16, 8)), Some(0));
        assert_eq!(class(layout(17, 1)), Some(1));
        assert_eq!(class(layout(2048, 16)), Some(7));
        assert_eq!(class(layout(2049, 1)), None, "larger: system allocator");
        assert_eq!(class(layout(8, 32)), None, "over-aligned: system allocator");
    }

    #[test]
    fn blocks_are_aligned_disjoint_reused_after_free_and_keep_their_bytes_across_classes() {
        let a = SizeClasses::new();
        unsafe {
            let mut blocks = Vec::new();
            for (i, size) in [1usize, 15, 16, 17, 100, 1000, 2048, 3000, 70_000]
                .iter()
                .enumerate()
            {
                let l = layout(*size, 8);
                let p = a.alloc(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % 8, 0);
                core::ptr::write_bytes(p, i as u8, *size);
                blocks.push((p, l, i as u8));
            }
            // No block was overwritten by another.
            for (p, l, fill) in &blocks {
                assert!((0..l.size()).all(|k| *p.add(k) == *fill));
            }
            // A freed block of a class is handed out again for the same class.
            let (p100, l100, _) = blocks[4];
            a.dealloc(p100, l100);
            assert_eq!(a.alloc(layout(120, 8)), p100);
            // realloc within a class keeps the block; across classes it moves and keeps the bytes.
            let (p17, l17, fill) = blocks[3];
            assert_eq!(a.realloc(p17, l17, 30), p17);
            let moved = a.realloc(p17, layout(30, 8), 500);
            assert_ne!(moved, p17);
            assert!((0..17).all(|k| *moved.add(k) == fill));
            let big = a.realloc(moved, layout(500, 8), 5000);
            assert!((0..17).all(|k| *big.add(k) == fill));
            a.dealloc(big, layout(5000, 8));
            let (p70k, l70k, _) = blocks[8];
            a.dealloc(p70k, l70k);
        }
    }

    #[test]
    fn many_small_blocks_span_several_slabs() {
        let a = SizeClasses::new();
        let l = layout(2048, 16);
        let mut seen = std::collections::BTreeSet::new();
        unsafe {
            for _ in 0..200 {
                let p = a.alloc(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % 16, 0);
                assert!(seen.insert(p as usize), "handed out twice");
            }
        }
        // 200 blocks of 2 KiB need more than one 64 KiB slab, and none overlaps another.
        let v: Vec<usize> = seen.into_iter().collect();
        assert!(v.windows(2).all(|w| w[1] - w[0] >= 2048));
    }
}
