//! The shared-memory race detector and seeded schedule fuzzing, on hand-written PTX.
//!
//! - `missing_barrier_is_a_race` / `barrier_orders`: a shared write by one warp and a read by
//!   another, without and with `bar.sync`.
//! - `mbarrier_orders` / `read_without_mbarrier_wait_is_a_race`: producer/consumer through an
//!   mbarrier, with and without the consumer's wait.
//! - `named_barrier_orders`: `bar.arrive 1, 64` / `bar.sync 1, 64` producer/consumer.
//! - `atomics_do_not_race`, `same_warp_lanes_do_not_race`.
//! - `elect_lane_is_fuzzed`: the lane `elect.sync` picks varies with the seed.
//! - `warp_order_dependence_found_by_fuzzing`: a kernel that assumes warp 0 takes the first
//!   ticket (no race: the ticket is an atomic) fails under some fuzz seed; the error names the
//!   seed and the same seed replays the same outcome.
use dsv4_emu::{ArgValue, Device, EmuError, LaunchConfig, Schedule};

const HEAD: &str = ".version 8.4\n.target sm_90a\n.address_size 64\n";

fn cfg(threads: u32) -> LaunchConfig {
    LaunchConfig { grid: [1, 1, 1], block: [threads, 1, 1], dynamic_smem: 0 }
}

fn line_of(ptx: &str, needle: &str) -> usize {
    ptx.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no `{needle}`")) + 1
}

/// Launch `kernel` with one output buffer of `n` u32 words; returns the words.
fn launch(dev: &mut Device, ptx: &str, kernel: &str, threads: u32, n: usize) -> Result<Vec<u32>, EmuError> {
    let m = dev.load_module(kernel, ptx).unwrap();
    let out = dev.alloc(n * 4).unwrap();
    dev.memset(out, 0, n * 4).unwrap();
    dev.launch(m, kernel, &cfg(threads), &[ArgValue::U64(out)])?;
    let mut b = vec![0u8; n * 4];
    dev.read(out, &mut b).unwrap();
    dev.free(out).unwrap();
    Ok(b.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect())
}

fn fixed() -> Device {
    let mut d = Device::new();
    d.set_schedule(Schedule::Fixed);
    d.set_race_check(true);
    d
}

/// Every thread stores s[tid] = tid + 1, (optionally) bar.sync, then reads s[(tid + 32) % 64]
/// (a word the other warp wrote) into out[tid].
fn exchange_ptx(barrier: bool) -> String {
    format!(
        r#"{HEAD}.visible .entry exchange(.param .u64 out)
{{
    .reg .b32 %r<10>;
    .reg .b64 %rd<6>;
    .shared .align 4 .b32 s[64];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, s;
    shl.b32 %r3, %r1, 2;
    add.u32 %r4, %r2, %r3;
    add.u32 %r5, %r1, 1;
    st.shared.u32 [%r4], %r5; // STORE
    {bar}
    add.u32 %r6, %r1, 32;
    and.b32 %r6, %r6, 63;
    shl.b32 %r6, %r6, 2;
    add.u32 %r7, %r2, %r6;
    ld.shared.u32 %r8, [%r7]; // LOAD
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r8;
    ret;
}}
"#,
        bar = if barrier { "bar.sync 0;" } else { "" }
    )
}

#[test]
fn missing_barrier_is_a_race() {
    let ptx = exchange_ptx(false);
    let e = launch(&mut fixed(), &ptx, "exchange", 64, 64).unwrap_err();
    let (ls, ll) = (line_of(&ptx, "// STORE"), line_of(&ptx, "// LOAD"));
    assert!(e.message.contains("shared-memory race in kernel exchange, CTA (0,0,0)"), "{}", e.message);
    // Warp 0 runs first (fixed schedule): it reads s[32] before warp 1 writes it.
    assert!(
        e.message.contains(&format!("write by warp 1 at line {ls} (`st.shared.u32 [%r4], %r5;`) conflicts with read by warp 0 at line {ll} (`ld.shared.u32 %r8, [%r7];`), address 0x80, no barrier between them")),
        "{}",
        e.message
    );
    // With the detector off the kernel "works" under the fixed schedule.
    let mut d = fixed();
    d.set_race_check(false);
    launch(&mut d, &ptx, "exchange", 64, 64).unwrap();
}

#[test]
fn barrier_orders() {
    let ptx = exchange_ptx(true);
    for sched in [Schedule::Fixed, Schedule::Fuzz { seed: 1 }, Schedule::Fuzz { seed: 2 }] {
        let mut d = fixed();
        d.set_schedule(sched);
        let out = launch(&mut d, &ptx, "exchange", 64, 64).unwrap();
        let want: Vec<u32> = (0..64).map(|t| (t + 32) % 64 + 1).collect();
        assert_eq!(out, want);
    }
}

/// Warp 0 fills s[0..32] and arrives on an mbarrier; warp 1 (optionally) waits on it, then
/// reads s[lane] into out[lane].
fn mbar_ptx(wait: bool) -> String {
    let w = if wait {
        "WAIT:\n    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r3], %r9;\n    @!%p2 bra WAIT;"
    } else {
        ""
    };
    format!(
        r#"{HEAD}.visible .entry mbar(.param .u64 out)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<6>;
    .shared .align 8 .b64 bar;
    .shared .align 4 .b32 s[32];
    mov.u32 %r1, %tid.x;
    and.b32 %r10, %r1, 31;
    mov.u32 %r3, bar;
    mov.u32 %r2, s;
    mov.u32 %r9, 0;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra SYNC;
    mbarrier.init.shared::cta.b64 [%r3], 1;
SYNC:
    bar.sync 0;
    shl.b32 %r4, %r10, 2;
    add.u32 %r4, %r2, %r4;
    setp.ge.u32 %p1, %r1, 32;
    @%p1 bra CONSUMER;
    mul.lo.u32 %r5, %r1, 7;
    st.shared.u32 [%r4], %r5; // PRODUCE
    setp.ne.u32 %p3, %r1, 0;
    @%p3 bra DONE;
    mbarrier.arrive.shared::cta.b64 %rd5, [%r3];
    bra DONE;
CONSUMER:
    {w}
    ld.shared.u32 %r6, [%r4]; // CONSUME
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r10, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r6;
DONE:
    ret;
}}
"#
    )
}

#[test]
fn mbarrier_orders() {
    let ptx = mbar_ptx(true);
    for sched in [Schedule::Fixed, Schedule::Fuzz { seed: 3 }, Schedule::Fuzz { seed: 4 }] {
        let mut d = fixed();
        d.set_schedule(sched);
        let out = launch(&mut d, &ptx, "mbar", 64, 32).unwrap();
        assert_eq!(out, (0..32).map(|l| l * 7).collect::<Vec<u32>>());
    }
}

#[test]
fn read_without_mbarrier_wait_is_a_race() {
    let ptx = mbar_ptx(false);
    let e = launch(&mut fixed(), &ptx, "mbar", 64, 32).unwrap_err();
    let (lp, lc) = (line_of(&ptx, "// PRODUCE"), line_of(&ptx, "// CONSUME"));
    assert!(e.message.contains(&format!("read by warp 1 at line {lc}")), "{}", e.message);
    assert!(e.message.contains(&format!("write by warp 0 at line {lp}")), "{}", e.message);
}

/// Every thread adds 1 to s[0] (atom and red), then thread 0 copies the total out.
const ATOMICS: &str = r#".version 8.4
.target sm_90a
.address_size 64
.visible .entry atomics(.param .u64 out)
{
    .reg .pred %p<4>;
    .reg .b32 %r<10>;
    .reg .b64 %rd<6>;
    .shared .align 4 .b32 s[2];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, s;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra INIT;
    mov.u32 %r3, 0;
    st.shared.u32 [%r2], %r3;
    st.shared.u32 [%r2+4], %r3;
INIT:
    bar.sync 0;
    atom.shared.add.u32 %r4, [%r2], 1;
    red.shared.add.u32 [%r2+4], 2;
    bar.sync 0;
    @%p1 bra DONE;
    ld.shared.u32 %r5, [%r2];
    ld.shared.u32 %r6, [%r2+4];
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    st.global.u32 [%rd2], %r5;
    st.global.u32 [%rd2+4], %r6;
DONE:
    ret;
}
"#;

#[test]
fn atomics_do_not_race() {
    for sched in [Schedule::Fixed, Schedule::Fuzz { seed: 5 }] {
        let mut d = fixed();
        d.set_schedule(sched);
        assert_eq!(launch(&mut d, ATOMICS, "atomics", 128, 2).unwrap(), vec![128, 256]);
    }
}

/// All 32 lanes of warp 0 store different values to one word, then lane 0 reads it back: the
/// lanes of one instruction are not a race for the detector (warp 1 idles).
const SAME_WARP: &str = r#".version 8.4
.target sm_90a
.address_size 64
.visible .entry same_warp(.param .u64 out)
{
    .reg .pred %p<4>;
    .reg .b32 %r<10>;
    .reg .b64 %rd<6>;
    .shared .align 4 .b32 s[1];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, s;
    setp.ge.u32 %p1, %r1, 32;
    @%p1 bra DONE;
    st.shared.u32 [%r2], %r1;
    ld.shared.u32 %r5, [%r2];
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra DONE;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    st.global.u32 [%rd2], %r5;
DONE:
    ret;
}
"#;

#[test]
fn same_warp_lanes_do_not_race() {
    launch(&mut fixed(), SAME_WARP, "same_warp", 64, 1).unwrap();
}

/// Each warp's lane 0 takes a ticket (atom.shared.add) and traps unless its ticket equals its
/// warp id: a reduction that assumes warp 0 arrives first. Race-free, but order-dependent.
const TICKETS: &str = r#".version 8.4
.target sm_90a
.address_size 64
.visible .entry tickets(.param .u64 out)
{
    .reg .pred %p<4>;
    .reg .b32 %r<10>;
    .reg .b64 %rd<6>;
    .shared .align 4 .b32 ctr;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, ctr;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra INIT;
    mov.u32 %r3, 0;
    st.shared.u32 [%r2], %r3;
INIT:
    bar.sync 0;
    and.b32 %r4, %r1, 31;
    setp.ne.u32 %p2, %r4, 0;
    @%p2 bra DONE;
    shr.u32 %r5, %r1, 5;
    atom.shared.add.u32 %r6, [%r2], 1;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r6, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r5;
    setp.ne.u32 %p3, %r6, %r5;
    @%p3 trap; // ORDER
DONE:
    ret;
}
"#;

#[test]
fn warp_order_dependence_found_by_fuzzing() {
    // The fixed schedule runs warp 0 first: passes.
    assert_eq!(launch(&mut fixed(), TICKETS, "tickets", 256, 8).unwrap(), (0..8).collect::<Vec<u32>>());
    let mut failing = None;
    for seed in 0..64u64 {
        let mut d = fixed();
        d.set_schedule(Schedule::Fuzz { seed });
        if let Err(e) = launch(&mut d, TICKETS, "tickets", 256, 8) {
            failing = Some((seed, e));
            break;
        }
    }
    let (seed, e) = failing.expect("no fuzz seed in 0..64 exposed the warp-order dependence");
    assert!(e.message.contains(&format!("schedule seed {seed}")), "{}", e.message);
    assert!(e.message.contains(&format!("line {}", line_of(TICKETS, "// ORDER"))), "{}", e.message);
    // The same seed replays the same failure, and the same outputs for a passing seed.
    for _ in 0..3 {
        let mut d = fixed();
        d.set_schedule(Schedule::Fuzz { seed });
        assert_eq!(launch(&mut d, TICKETS, "tickets", 256, 8).unwrap_err().message, e.message);
    }
    let mut d = fixed();
    d.set_race_check(false);
    d.set_schedule(Schedule::Fuzz { seed });
    let a = launch(&mut d, &exchange_ptx(false), "exchange", 64, 64).unwrap();
    for _ in 0..3 {
        assert_eq!(launch(&mut d, &exchange_ptx(false), "exchange", 64, 64).unwrap(), a);
    }
}

/// `elect.sync` picks a lane the seed chooses (lowest under the fixed schedule).
const ELECT: &str = r#".version 8.4
.target sm_90a
.address_size 64
.visible .entry elect(.param .u64 out)
{
    .reg .pred %p<4>;
    .reg .b32 %r<10>;
    .reg .b64 %rd<6>;
    mov.u32 %r1, %laneid;
    mov.u32 %r2, -1;
    elect.sync %r3|%p1, %r2;
    @!%p1 bra DONE;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    st.global.u32 [%rd2], %r1;
    st.global.u32 [%rd2+4], %r3;
DONE:
    ret;
}
"#;

#[test]
fn elect_lane_is_fuzzed() {
    assert_eq!(launch(&mut fixed(), ELECT, "elect", 32, 2).unwrap(), vec![0, 0]);
    let mut lanes = std::collections::BTreeSet::new();
    for seed in 0..16u64 {
        let mut d = fixed();
        d.set_schedule(Schedule::Fuzz { seed });
        let o = launch(&mut d, ELECT, "elect", 32, 2).unwrap();
        assert_eq!(o[0], o[1], "the elected lane is the one whose predicate is set");
        lanes.insert(o[0]);
    }
    assert!(lanes.len() > 1, "fuzzing never varied the elected lane: {lanes:?}");
}


/// Named barrier producer/consumer: warp 0 writes s[lane] and `bar.arrive 1, 64`; warp 1
/// `bar.sync 1, 64` then reads. Without the consumer's barrier it is a race.
fn named_ptx(sync: bool) -> String {
    format!(
        r#"{HEAD}.visible .entry named(.param .u64 out)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<6>;
    .shared .align 4 .b32 s[32];
    mov.u32 %r1, %tid.x;
    and.b32 %r10, %r1, 31;
    mov.u32 %r2, s;
    shl.b32 %r4, %r10, 2;
    add.u32 %r4, %r2, %r4;
    setp.ge.u32 %p1, %r1, 32;
    @%p1 bra CONSUMER;
    add.u32 %r5, %r1, 100;
    st.shared.u32 [%r4], %r5;
    bar.arrive 1, 64;
    bra DONE;
CONSUMER:
    {b}
    ld.shared.u32 %r6, [%r4];
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r10, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r6;
DONE:
    ret;
}}
"#,
        b = if sync { "bar.sync 1, 64;" } else { "" }
    )
}

#[test]
fn named_barrier_orders() {
    for sched in [Schedule::Fixed, Schedule::Fuzz { seed: 6 }, Schedule::Fuzz { seed: 7 }] {
        let mut d = fixed();
        d.set_schedule(sched);
        let out = launch(&mut d, &named_ptx(true), "named", 64, 32).unwrap();
        assert_eq!(out, (100..132).collect::<Vec<u32>>());
    }
    let e = launch(&mut fixed(), &named_ptx(false), "named", 64, 32).unwrap_err();
    assert!(e.message.contains("read by warp 1") && e.message.contains("write by warp 0"), "{}", e.message);
}
