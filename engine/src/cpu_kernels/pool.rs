//! Row splitting over a persistent thread pool: rayon's global pool (threads spawned once at
//! first use). Each thread gets one contiguous range of rows, so it streams one contiguous part
//! of the weight matrix (what the hardware and software prefetch want).

use std::cell::Cell;
use std::ops::Range;

thread_local! {
    /// Set while this thread runs its part of a phase planned by [`plan`]: the kernels called
    /// inside must not split their rows again.
    static IN_PHASE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with row splitting turned off on this thread (it already holds its share of a phase).
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    let prev = IN_PHASE.with(|c| c.replace(true));
    let r = f();
    IN_PHASE.with(|c| c.set(prev));
    r
}

/// Splits several jobs' rows (`jobs[j] = (rows, bytes per row)`) into at most `parts`
/// contiguous shares of about equal bytes, each a list of `(job, row range)` pieces in job
/// order: one parallel phase over all the matrices (e.g. every expert's w1 and w3), each thread
/// streaming one contiguous stretch of them.
pub fn plan(jobs: &[(usize, usize)], parts: usize) -> Vec<Vec<(usize, Range<usize>)>> {
    let total: usize = jobs.iter().map(|(r, b)| r * b).sum();
    let parts = parts.max(1);
    let mut out: Vec<Vec<(usize, Range<usize>)>> = vec![Vec::new()];
    let mut filled = 0usize; // bytes in the shares before the current one
    let mut used = 0usize; // bytes in the current share
    for (j, &(rows, bpr)) in jobs.iter().enumerate() {
        let mut r0 = 0;
        while r0 < rows {
            let k = out.len();
            // the current share ends at byte total·k/parts (the last one takes the rest)
            let end = if k == parts { usize::MAX } else { total * k / parts };
            let room = end.saturating_sub(filled + used);
            let take = if bpr == 0 { rows - r0 } else { room.div_ceil(bpr).clamp(1, rows - r0) };
            out.last_mut().expect("a share").push((j, r0..r0 + take));
            used += take * bpr;
            r0 += take;
            if filled + used >= end && k < parts {
                filled += used;
                used = 0;
                out.push(Vec::new());
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

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
    if nt <= 1 || n <= align || n * bytes_per_row < MIN_PARALLEL_BYTES || IN_PHASE.with(Cell::get) {
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

/// Weight bytes a thread keeps hot (in L2) while every chunk of a batch passes over them.
pub const TILE_BYTES: usize = 64 * 1024;

/// Calls `kern(c, rows)` — batch chunk `c` over weight rows `rows` — for every chunk in
/// `0..chunks` and every row of `rows`. The rows are split across the pool as by
/// [`split_rows`]; each thread walks its share in tiles of about [`TILE_BYTES`] and runs every
/// chunk on a tile before the next, so a batch of several chunks streams the weights from
/// memory once instead of once per chunk.
pub fn tiled<F>(chunks: usize, rows: Range<usize>, bytes_per_row: usize, kern: F)
where
    F: Fn(usize, Range<usize>) + Sync,
{
    split_rows(rows, 1, bytes_per_row.saturating_mul(chunks), |r| {
        if chunks == 1 {
            return kern(0, r);
        }
        let tile = (TILE_BYTES / bytes_per_row.max(1)).max(1);
        let mut s = r.start;
        while s < r.end {
            let e = (s + tile).min(r.end);
            for c in 0..chunks {
                kern(c, s..e);
            }
            s = e;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn plan_covers_every_row_once_with_balanced_shares() {
        for (jobs, parts) in [
            (vec![(2048, 2176), (2048, 2176), (4096, 1088)], 2),
            (vec![(7, 100), (1, 5000), (300, 3)], 3),
            (vec![(5, 10)], 8),
            (vec![(0, 10), (3, 0), (4, 1)], 2),
        ] {
            let shares = plan(&jobs, parts);
            assert!(shares.len() <= parts);
            let mut seen: Vec<Vec<bool>> = jobs.iter().map(|(r, _)| vec![false; *r]).collect();
            for s in &shares {
                for (j, r) in s {
                    for i in r.clone() {
                        assert!(!seen[*j][i], "row {i} of job {j} twice");
                        seen[*j][i] = true;
                    }
                }
            }
            assert!(seen.iter().all(|v| v.iter().all(|&b| b)), "{jobs:?}: a row is missing");
            let total: usize = jobs.iter().map(|(r, b)| r * b).sum();
            let biggest_row = jobs.iter().map(|(_, b)| *b).max().unwrap_or(0);
            for s in &shares {
                let bytes: usize = s.iter().map(|(j, r)| r.len() * jobs[*j].1).sum();
                assert!(bytes <= total / parts + 2 * biggest_row, "{jobs:?}: share of {bytes} of {total}");
            }
        }
    }
}
