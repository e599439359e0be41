//! `memcmp` / `bcmp` for the wasm guest, eight bytes at a time.
//!
//! Rust compares strings and byte slices through `memcmp` (payload and settings
//! maps are ordered by their keys, so every field lookup compares keys). On
//! `wasm32-wasip2` the symbol otherwise comes from wasi-libc, whose `memcmp` is
//! musl's portable byte-by-byte loop; these definitions take precedence at link
//! time (an archive member is only pulled in for a symbol still undefined) and
//! compare 64-bit words, which wasm does natively. Same results, fewer instructions.

#![allow(unsafe_code)]

/// Compares `n` bytes at `a` and `b` like C's `memcmp`: negative, zero or positive
/// as the first differing byte (unsigned) of `a` is less than, equal to or greater
/// than that of `b`.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg(target_family = "wasm")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { compare(a, b, n) }
}

/// Zero when the `n` bytes at `a` and `b` are equal, non-zero otherwise.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg(target_family = "wasm")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { compare(a, b, n) }
}

/// The comparison behind `memcmp` and `bcmp` (compiled on every target, so it is tested).
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[inline(always)]
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, and the caller guarantees n readable bytes; `[u8; 8]`
        // needs no alignment. Big-endian: the first byte is the most significant, so
        // the integers order as the bytes do.
        let (x, y) = unsafe {
            (
                u64::from_be_bytes(a.add(i).cast::<[u8; 8]>().read()),
                u64::from_be_bytes(b.add(i).cast::<[u8; 8]>().read()),
            )
        };
        if x != y {
            return if x < y { -1 } else { 1 };
        }
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::compare;

    fn sign(a: &[u8], b: &[u8]) -> i32 {
        assert_eq!(a.len(), b.len());
        // SAFETY: both slices hold `len` bytes.
        unsafe { compare(a.as_ptr(), b.as_ptr(), a.len()) }.signum()
    }

    #[test]
    fn orders_like_byte_slices() {
        let samples: [&[u8]; 8] = [
            b"",
            b"a",
            b"battery_v",
            b"battery_w",
            b"temp_tank_c",
            b"temp_tank_d",
            b"\xff\x00\x00\x00\x00\x00\x00\x00\x01",
            b"\x00\xff\x00\x00\x00\x00\x00\x00\x01",
        ];
        for a in samples {
            for b in samples {
                let n = a.len().min(b.len());
                let expected = a[..n].cmp(&b[..n]) as i32;
                assert_eq!(sign(&a[..n], &b[..n]), expected, "{a:?} vs {b:?}");
            }
        }
        // A difference in every position of a 20-byte run, both ways.
        let base = [7u8; 20];
        for i in 0..20 {
            let mut hi = base;
            hi[i] = 200;
            assert_eq!(sign(&base, &hi), -1);
            assert_eq!(sign(&hi, &base), 1);
            assert_eq!(sign(&hi, &hi), 0);
        }
    }
}
