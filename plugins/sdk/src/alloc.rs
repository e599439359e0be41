//! The wasm guest's allocator: per-size free lists in front of talc.
//!
//! Rules allocate and free many small blocks per message (payload map nodes and
//! keys, condition codes, the canonical-ABI copies of the arguments), and most of
//! them are freed within the same call. [`SizeClasses`] keeps freed blocks of up to
//! [`MAX_SMALL`] bytes on one singly linked list per 16-byte size class and hands
//! them out again in a few instructions (what glibc's tcache does for native code);
//! everything larger, and every first allocation of a class, goes to the allocator
//! behind it (talc, grown page by page with `memory.grow`, so the host's memory limit
//! still applies). Blocks on the lists are not returned to talc: the lists hold at
//! most the peak of small blocks in use at once.
//!
//! The guest is single-threaded (no `atomics` target feature), which is what makes
//! the plain cell below sound; the module is compiled for that target only.

#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// Size-class granularity and the alignment of every small block.
const GRAIN: usize = 16;
/// Largest size served from the free lists.
const MAX_SMALL: usize = 512;
/// Number of size classes (16, 32, ..., 512 bytes).
const CLASSES: usize = MAX_SMALL / GRAIN;

/// Free lists per size class in front of the allocator `A`.
pub struct SizeClasses<A> {
    inner: A,
    /// The first free block of each class; a free block's first word points to the
    /// next one (null ends the list).
    heads: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: only compiled for single-threaded wasm (see the module docs): there is no
// other thread that could share the lists.
unsafe impl<A: Sync> Sync for SizeClasses<A> {}

impl<A> SizeClasses<A> {
    /// Free lists (all empty) in front of `inner`.
    pub const fn new(inner: A) -> Self {
        Self { inner, heads: UnsafeCell::new([ptr::null_mut(); CLASSES]) }
    }
}

/// The size class of a layout, if it is small enough to be served from the lists.
#[inline(always)]
fn class(layout: Layout) -> Option<usize> {
    let size = layout.size();
    if size <= MAX_SMALL && layout.align() <= GRAIN {
        Some(size.saturating_sub(1) / GRAIN)
    } else {
        None
    }
}

/// The layout with which blocks of size class `c` are taken from the inner allocator.
#[inline(always)]
fn class_layout(c: usize) -> Layout {
    // SAFETY: (c + 1) * GRAIN <= MAX_SMALL is far below isize::MAX and GRAIN is a
    // power of two.
    unsafe { Layout::from_size_align_unchecked((c + 1) * GRAIN, GRAIN) }
}

// SAFETY: small blocks are always taken from `inner` with their class's layout and
// only ever reused for requests of the same class (same size bound, alignment at most
// GRAIN); everything else is passed to `inner` unchanged.
unsafe impl<A: GlobalAlloc> GlobalAlloc for SizeClasses<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some(c) => unsafe {
                let head = &mut (*self.heads.get())[c];
                let block = *head;
                if block.is_null() {
                    self.inner.alloc(class_layout(c))
                } else {
                    *head = block.cast::<*mut u8>().read();
                    block
                }
            },
            None => unsafe { self.inner.alloc(layout) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class(layout) {
            Some(c) => unsafe {
                let head = &mut (*self.heads.get())[c];
                ptr.cast::<*mut u8>().write(*head);
                *head = ptr;
            },
            None => unsafe { self.inner.dealloc(ptr, layout) },
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to the alignment, does
        // not overflow isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            (None, None) => unsafe { self.inner.realloc(ptr, layout, new_size) },
            (Some(a), Some(b)) if a == b => ptr,
            _ => unsafe {
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            },
        }
    }
}
