//! Row splitting over a persistent thread pool: rayon's global pool (threads spawned once at
//! first use). Each thread gets one contiguous range of rows, so it streams one contiguous part
//! of the weight matrix (what the hardware and software prefetch want).

use std::ops::Range;

/// Below this many weight bytes an op runs on the calling thread (fork/join costs more).
pub const MIN_PARALLEL_BYTES: usize = 64 * 1024;

/// Number of worker threads.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Calls `f` on contiguous sub-ranges of `rows` (boundaries multiples of `align` rows from
/// `rows.start`), one per pool thread, and waits for all. `bytes_per_row` decides whether
/// splitting pays.
pub fn split_rows<F>(rows: Range<usize>, align: usize, bytes_per_row: usize, f: F)
where
    F: Fn(Range<usize>) + Sync,
{
    let n = rows.len();
    let align = align.max(1);
    let nt = threads();
    if nt <= 1 || n <= align || n * bytes_per_row < MIN_PARALLEL_BYTES {
        if n > 0 {
            f(rows);
        }
        return;
    }
    let units = n.div_ceil(align);
    let parts = nt.min(units);
    rayon::scope(|s| {
        let f = &f;
        let mut start = 0;
        for p in 0..parts {
            let u = units / parts + usize::from(p < units % parts);
            let end = (start + u * align).min(n);
            let r = rows.start + start..rows.start + end;
            if p + 1 == parts {
                f(r); // the calling thread takes the last part
            } else {
                s.spawn(move |_| f(r));
            }
            start = end;
        }
    });
}
