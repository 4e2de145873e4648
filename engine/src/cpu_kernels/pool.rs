//! The kernels' thread pool: persistent workers that spin briefly between jobs, so a
//! fork/join costs about a microsecond instead of a sleeping thread's wake-up (22 µs measured
//! with rayon's pool on the 2-vCPU KVM dev box, `bench/examples/dram_probe.rs`: more than a
//! batch-1 expert GEMV's whole budget at full bandwidth). A worker that finds no job for
//! [`SPIN`] parks and is unparked by the next job; workers are pinned one per allowed CPU
//! (Linux; `DSV4_PIN=0` leaves them unpinned), the calling thread takes a share too and is
//! left unpinned.
//!
//! Row splitting ([`split_rows`], [`tiled`]) cuts the rows into a few contiguous ranges per
//! thread ([`parts`]), each streaming one contiguous part of the weight matrix (what the
//! hardware and software prefetch want), claimed in order by whichever thread is free: on a
//! shared host one vCPU often runs slower for a while, and with one fixed range per thread
//! the other then waited at the join (`op_profile`'s batch-1 step, 3 Flash layers, on the
//! 2-vCPU Zen 3 host with `taskset -c 1 sh -c 'while :; do :; done'` running beside it:
//! 155 / 156 ms with one range per thread, 124 / 124 ms with these tasks; batch 8 543 / 558
//! -> 477 / 480 ms; alone, the same within the host's noise). Thread count: `DSV4_THREADS`,
//! else `RAYON_NUM_THREADS`, else every CPU.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

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

/// How long an idle worker spins for the next job before it parks: longer than the serial
/// work between two parallel ops of a decode step, short enough not to hold a core while idle.
pub const SPIN: Duration = Duration::from_millis(2);

/// A job as the workers see it: `f(i)` for every task `i < n` not yet claimed.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync),
    n: usize,
}

/// The job slot's value before the first job.
const NOOP: &(dyn Fn(usize) + Sync) = &|_| {};

struct Pool {
    /// Set once, right after the workers are spawned (they never read it).
    workers: OnceLock<Vec<Thread>>,
    /// Bumped once per job; a worker runs a job when it sees a new value.
    epoch: AtomicU64,
    /// Written by the job's owner before `epoch`, read by workers after it.
    job: UnsafeCell<Job>,
    /// The next unclaimed task of the current job.
    next: AtomicUsize,
    /// Workers that have not yet finished the current job.
    pending: AtomicUsize,
    /// Workers parked (or about to park).
    sleepers: AtomicUsize,
    /// Held by the thread whose job is running; others (and nested calls) run serially.
    busy: AtomicBool,
    /// A worker's task panicked: its payload, re-raised on the owner's thread.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `job` is written only by the `busy` holder while no worker reads it (all have
// finished the previous job), and published through `epoch` (Release/Acquire).
unsafe impl Sync for Pool {}
unsafe impl Send for Pool {}

/// Number of threads a parallel op uses (workers + the caller).
pub fn threads() -> usize {
    pool().workers().len() + 1
}

impl Pool {
    fn workers(&self) -> &[Thread] {
        self.workers.get().map_or(&[], Vec::as_slice)
    }
}

fn wanted_threads() -> usize {
    let env = |k| std::env::var(k).ok().and_then(|v: String| v.trim().parse::<usize>().ok()).filter(|&n| n > 0);
    env("DSV4_THREADS")
        .or_else(|| env("RAYON_NUM_THREADS"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = wanted_threads();
        // CPUs 1.. for the workers (the caller usually runs on the first)
        let cpus = allowed_cpus();
        let pin = cpus.len() >= n && std::env::var("DSV4_PIN").as_deref() != Ok("0");
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            workers: OnceLock::new(),
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new(Job { f: NOOP, n: 0 }),
            next: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            panic: Mutex::new(None),
        }));
        let workers = (1..n)
            .filter_map(|i| {
                let cpu = pin.then(|| cpus[i]);
                std::thread::Builder::new()
                    .name(format!("dsv4-kernel-{i}"))
                    .spawn(move || worker(pool, cpu))
                    .ok()
                    .map(|h| h.thread().clone())
            })
            .collect();
        let _ = pool.workers.set(workers);
        pool
    })
}

fn worker(pool: &'static Pool, cpu: Option<usize>) {
    if let Some(c) = cpu {
        pin_to(c);
    }
    let mut seen = 0u64;
    loop {
        // spin, then park, until a new job is published
        let t0 = Instant::now();
        let mut spins = 0u32;
        while pool.epoch.load(Acquire) == seen {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && t0.elapsed() > SPIN {
                pool.sleepers.fetch_add(1, SeqCst);
                if pool.epoch.load(SeqCst) == seen {
                    std::thread::park();
                }
                pool.sleepers.fetch_sub(1, SeqCst);
            }
        }
        seen = pool.epoch.load(Acquire);
        // SAFETY: published before `epoch`; the owner waits for `pending` before reusing it.
        let job = unsafe { *pool.job.get() };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| run_tasks(pool, job))) {
            pool.panic.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(p);
        }
        pool.pending.fetch_sub(1, Release);
    }
}

fn run_tasks(pool: &Pool, job: Job) {
    loop {
        let i = pool.next.fetch_add(1, Relaxed);
        if i >= job.n {
            return;
        }
        // SAFETY: the owner keeps `f` alive until every worker has finished the job.
        unsafe { (*job.f)(i) };
    }
}

/// Calls `f(i)` once for every `i` in `0..n` on the pool's threads and the caller's, tasks
/// claimed in order (so the caller and a worker that wakes late share the work), and waits for
/// all. A panic in a task is re-raised here after every thread has stopped. When the pool is
/// already running a job (another caller's, or this call is nested in a task) the tasks run
/// on the calling thread.
pub fn tasks<F: Fn(usize) + Sync>(n: usize, f: F) {
    let pool = pool();
    if n <= 1 || pool.workers().is_empty() || pool.busy.compare_exchange(false, true, Acquire, Relaxed).is_err() {
        (0..n).for_each(f);
        return;
    }
    let fr: &(dyn Fn(usize) + Sync) = &f;
    // SAFETY: lifetime erased; `f` outlives the job because this function waits for every
    // worker (`pending == 0`) before returning or unwinding.
    let fr: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(fr) };
    unsafe { *pool.job.get() = Job { f: fr, n } };
    pool.next.store(0, Relaxed);
    pool.pending.store(pool.workers().len(), Relaxed);
    pool.epoch.fetch_add(1, SeqCst);
    if pool.sleepers.load(SeqCst) > 0 {
        pool.workers().iter().for_each(Thread::unpark);
    }
    let mine = catch_unwind(AssertUnwindSafe(|| run_tasks(pool, Job { f: fr, n })));
    while pool.pending.load(Acquire) > 0 {
        std::hint::spin_loop();
    }
    let theirs = pool.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
    pool.busy.store(false, Release);
    if let Err(p) = mine {
        resume_unwind(p);
    }
    if let Some(p) = theirs {
        resume_unwind(p);
    }
}

/// `[f(0), .., f(n - 1)]` computed as [`tasks`].
pub fn map<T: Send + Sync, F: Fn(usize) -> T + Sync>(n: usize, f: F) -> Vec<T> {
    let slots: Vec<OnceLock<T>> = (0..n).map(|_| OnceLock::new()).collect();
    tasks(n, |i| {
        let _ = slots[i].set(f(i));
    });
    slots.into_iter().map(|s| s.into_inner().expect("every task ran")).collect()
}

/// `f(i, chunk_i)` for the chunks of `chunk` elements of `out` (the last may be shorter), as
/// [`tasks`].
pub fn for_chunks_mut<T: Send, F: Fn(usize, &mut [T]) + Sync>(out: &mut [T], chunk: usize, f: F) {
    let (len, chunk) = (out.len(), chunk.max(1));
    let base = SendPtr(out.as_mut_ptr());
    tasks(len.div_ceil(chunk), |i| {
        let (a, b) = (i * chunk, ((i + 1) * chunk).min(len));
        // SAFETY: task i alone touches out[a..b], and `out` is borrowed for the whole call.
        f(i, unsafe { std::slice::from_raw_parts_mut(base.get().add(a), b - a) })
    });
}

/// A raw pointer tasks may share (each touches its own elements).
struct SendPtr<T>(*mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

/// The CPUs this process may run on (Linux), in order; empty where unknown.
fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            return (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect();
        }
    }
    Vec::new()
}

/// Pins the calling thread to `cpu` (best effort: a refusal leaves it unpinned).
fn pin_to(cpu: usize) {
    #[cfg(target_os = "linux")]
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// Splits several jobs' rows (`jobs[j] = (rows, bytes per row)`) into at most `parts`
/// contiguous shares of about equal bytes, each a list of `(job, row range)` pieces in job
/// order, every piece starting at a multiple of `align` rows: one parallel phase over all the
/// matrices (e.g. every expert's w1 and w3), each thread streaming one contiguous stretch of them.
pub fn plan(jobs: &[(usize, usize)], parts: usize, align: usize) -> Vec<Vec<(usize, Range<usize>)>> {
    let align = align.max(1);
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
            let take = if bpr == 0 { rows - r0 } else { room.div_ceil(bpr).max(1).next_multiple_of(align).min(rows - r0) };
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

/// Most tasks per thread a split makes (see [`parts`]).
pub const TASKS_PER_THREAD: usize = 4;

/// Smallest weight stretch worth a task of its own (a claim is one atomic add, but each new
/// stretch restarts the prefetchers).
pub const MIN_TASK_BYTES: usize = 256 * 1024;

/// How many contiguous tasks an op over `bytes` of weights (`forward_many`: bytes times tokens,
/// its measure of work) is cut into: one per thread, up to [`TASKS_PER_THREAD`] per thread
/// where each keeps at least [`MIN_TASK_BYTES`]. The tasks are claimed in order by the free
/// threads, so a thread slowed down (a busy neighbour on its vCPU) takes fewer of them instead
/// of holding up the join.
pub fn parts(bytes: usize) -> usize {
    let nt = threads();
    (bytes / MIN_TASK_BYTES).clamp(nt, nt * TASKS_PER_THREAD)
}

/// Calls `f` on contiguous sub-ranges of `rows` (boundaries multiples of `align` rows from
/// `rows.start`), [`parts`] of them spread over the pool's threads, and waits for all.
/// `bytes_per_row` decides whether splitting pays and into how many ranges.
pub fn split_rows<F>(rows: Range<usize>, align: usize, bytes_per_row: usize, f: F)
where
    F: Fn(Range<usize>) + Sync,
{
    let n = rows.len();
    let align = align.max(1);
    let nt = threads();
    let bytes = n.saturating_mul(bytes_per_row);
    if nt <= 1 || n <= align || bytes < MIN_PARALLEL_BYTES || IN_PHASE.with(Cell::get) {
        if n > 0 {
            f(rows);
        }
        return;
    }
    let units = n.div_ceil(align);
    let parts = parts(bytes).min(units);
    // part p: units [units·p/parts, units·(p+1)/parts)
    tasks(parts, |p| {
        let (a, b) = ((units * p / parts * align).min(n), (units * (p + 1) / parts * align).min(n));
        f(rows.start + a..rows.start + b)
    });
}

/// Weight bytes a thread keeps hot (in L2) while every chunk of a batch passes over them.
pub const TILE_BYTES: usize = 64 * 1024;

/// Calls `kern(c, rows)` — batch chunk `c` over weight rows `rows` — for every chunk in
/// `0..chunks` and every row of `rows`. The rows are split across the pool as by
/// [`split_rows`] (at multiples of `align` from `rows.start`); each thread walks its share in
/// tiles of about [`TILE_BYTES`] (also multiples of `align`) and runs every chunk on a tile
/// before the next, so a batch of several chunks streams the weights from memory once instead of
/// once per chunk.
pub fn tiled<F>(chunks: usize, rows: Range<usize>, align: usize, bytes_per_row: usize, kern: F)
where
    F: Fn(usize, Range<usize>) + Sync,
{
    let align = align.max(1);
    split_rows(rows, align, bytes_per_row.saturating_mul(chunks), |r| {
        if chunks == 1 {
            return kern(0, r);
        }
        let tile = (TILE_BYTES / bytes_per_row.max(1)).max(1).next_multiple_of(align);
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
    use super::{for_chunks_mut, map, parts, plan, split_rows, tasks, threads, MIN_TASK_BYTES, TASKS_PER_THREAD};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn tasks_run_each_index_once_also_nested_concurrent_and_after_parking() {
        for n in [0, 1, 2, 3, 7, 64, 1000] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            tasks(n, |i| {
                // a nested call runs on the calling thread (the pool is busy)
                tasks(3, |_| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 3), "n = {n}");
        }
        // several callers at once: one owns the pool, the others run serially; all complete
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    for round in 0..200 {
                        let v = map(17, |i| i * t + round);
                        assert_eq!(v, (0..17).map(|i| i * t + round).collect::<Vec<_>>());
                    }
                });
            }
        });
        // workers that parked (idle longer than SPIN) wake for the next job
        std::thread::sleep(super::SPIN * 3);
        let seen = std::sync::Mutex::new(std::collections::HashSet::new());
        tasks(256, |_| {
            seen.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(std::time::Duration::from_micros(50));
        });
        assert!(seen.lock().unwrap().len() <= threads());
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_pool_still_works() {
        let r = std::panic::catch_unwind(|| {
            tasks(8, |i| {
                if i == 5 {
                    panic!("task five");
                }
            })
        });
        let msg = r.expect_err("the panic propagates");
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"task five"));
        let mut out = vec![0usize; 1001];
        for_chunks_mut(&mut out, 100, |c, o| o.iter_mut().enumerate().for_each(|(j, v)| *v = c * 100 + j));
        assert_eq!(out, (0..1001).collect::<Vec<_>>());
        let covered: Vec<AtomicUsize> = (0..513).map(|_| AtomicUsize::new(0)).collect();
        split_rows(7..520, 8, 1 << 20, |r| {
            assert!((r.start - 7).is_multiple_of(8), "{r:?} not aligned");
            r.for_each(|i| {
                covered[i - 7].fetch_add(1, Ordering::Relaxed);
            })
        });
        assert!(covered[..513].iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn parts_are_one_to_four_per_thread_of_at_least_the_task_size() {
        let nt = threads();
        assert_eq!(parts(0), nt);
        assert_eq!(parts(MIN_TASK_BYTES * nt * 2 + 5), 2 * nt);
        assert_eq!(parts(usize::MAX), nt * TASKS_PER_THREAD);
        // a split into more ranges than threads still covers every row once, aligned
        let covered: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        split_rows(0..1000, 3, usize::MAX / 2, |r| {
            assert!(r.start.is_multiple_of(3), "{r:?} not aligned");
            r.for_each(|i| {
                covered[i].fetch_add(1, Ordering::Relaxed);
            })
        });
        assert!(covered.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn plan_covers_every_row_once_with_balanced_shares() {
        for (jobs, parts, align) in [
            (vec![(2048, 2176), (2048, 2176), (4096, 1088)], 2, 1),
            (vec![(2048, 2176), (2048, 2176), (4096, 1088)], 7, 96),
            (vec![(7, 100), (1, 5000), (300, 3)], 3, 1),
            (vec![(7, 100), (1, 5000), (300, 3)], 3, 4),
            (vec![(5, 10)], 8, 1),
            (vec![(0, 10), (3, 0), (4, 1)], 2, 2),
        ] {
            let shares = plan(&jobs, parts, align);
            assert!(shares.len() <= parts);
            let mut seen: Vec<Vec<bool>> = jobs.iter().map(|(r, _)| vec![false; *r]).collect();
            for s in &shares {
                for (j, r) in s {
                    assert!(r.start.is_multiple_of(align), "{jobs:?}: piece {r:?} of job {j} not aligned to {align}");
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
                // a share overshoots its end by less than one aligned run of rows, plus the
                // previous share's overshoot it starts after
                assert!(bytes <= total / parts + 2 * align * biggest_row, "{jobs:?}: share of {bytes} of {total}");
            }
        }
    }
}
