//! Executor tests: small PTX kernels (hand-written or compiled by the pinned nvcc, fixtures in
//! `exec_fixtures/`) run through `Device`.
use dsv4_emu::{ArgValue, Device, ErrorKind, LaunchConfig};

fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_smem: 0 }
}

fn upload_f32(dev: &mut Device, v: &[f32]) -> u64 {
    let p = dev.alloc(v.len() * 4).unwrap();
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    dev.write(p, &bytes).unwrap();
    p
}

fn upload_u32(dev: &mut Device, v: &[u32]) -> u64 {
    let p = dev.alloc(v.len() * 4).unwrap();
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    dev.write(p, &bytes).unwrap();
    p
}

fn download_f32(dev: &Device, p: u64, n: usize) -> Vec<f32> {
    let mut b = vec![0u8; n * 4];
    dev.read(p, &mut b).unwrap();
    b.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn download_u32(dev: &Device, p: u64, n: usize) -> Vec<u32> {
    let mut b = vec![0u8; n * 4];
    dev.read(p, &mut b).unwrap();
    b.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
}

const VADD: &str = include_str!("exec_fixtures/vadd.ptx");

#[test]
fn vector_add() {
    let mut dev = Device::new();
    let m = dev.load_module("vadd", VADD).unwrap();
    assert_eq!(dev.kernels(m), vec!["vadd".to_string()]);
    let n = 1000usize;
    let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..n).map(|i| (2 * i) as f32 + 0.5).collect();
    let pa = upload_f32(&mut dev, &a);
    let pb = upload_f32(&mut dev, &b);
    let pc = dev.alloc(n * 4).unwrap();
    let st = dev
        .launch(m, "vadd", &cfg(4, 256), &[ArgValue::U64(pa), ArgValue::U64(pb), ArgValue::U64(pc), ArgValue::I32(n as i32)])
        .unwrap();
    let c = download_f32(&dev, pc, n);
    for i in 0..n {
        assert_eq!(c[i], a[i] + b[i], "element {i}");
    }
    assert!(st.thread_insts > 0);
    assert_eq!(st.global_bytes, 3 * 4 * n as u64);
    assert!(st.warp_insts.get("ld.global").copied().unwrap_or(0) > 0);
}

const KERNELS: &str = include_str!("exec_fixtures/kernels.ptx");

fn load(dev: &mut Device) -> dsv4_emu::ModuleHandle {
    dev.load_module("kernels", KERNELS).unwrap()
}

#[test]
fn block_reduction_shuffles_shared_atomics() {
    let mut dev = Device::new();
    let m = load(&mut dev);
    let n = 1000;
    let x: Vec<f32> = (0..n).map(|i| (i % 17) as f32).collect();
    let px = upload_f32(&mut dev, &x);
    let out = upload_f32(&mut dev, &[0.0]);
    let count = upload_u32(&mut dev, &[0]);
    let st = dev
        .launch(m, "block_sum", &cfg(4, 256), &[ArgValue::U64(px), ArgValue::U64(out), ArgValue::U64(count), ArgValue::I32(n)])
        .unwrap();
    let want: f32 = x.iter().sum();
    assert_eq!(download_f32(&dev, out, 1)[0], want);
    assert_eq!(download_u32(&dev, count, 1)[0], 4);
    assert!(st.warp_insts["warp"] > 0);
    assert!(st.warp_insts["sync"] > 0);
}

#[test]
fn shared_atomics_histogram() {
    let mut dev = Device::new();
    let m = load(&mut dev);
    let n = 5000;
    let x: Vec<u32> = (0..n).map(|i| (i * 7919 + 13) % 1000).collect();
    let px = upload_u32(&mut dev, &x);
    let hist = upload_u32(&mut dev, &[0; 16]);
    dev.launch(m, "histogram", &cfg(3, 128), &[ArgValue::U64(px), ArgValue::U64(hist), ArgValue::I32(n as i32)]).unwrap();
    let mut want = [0u32; 16];
    for v in &x {
        want[(v & 15) as usize] += 1;
    }
    assert_eq!(download_u32(&dev, hist, 16), want.to_vec());
}

#[test]
fn divergent_loops_reconverge() {
    let mut dev = Device::new();
    let m = load(&mut dev);
    let n = 128;
    let x: Vec<u32> = (1..=n as u32).collect();
    let px = upload_u32(&mut dev, &x);
    let steps = dev.alloc(n * 4).unwrap();
    let ballots = dev.alloc(n / 32 * 4).unwrap();
    dev.launch(m, "collatz", &cfg(2, 64), &[ArgValue::U64(px), ArgValue::U64(steps), ArgValue::U64(ballots)]).unwrap();
    let s = download_u32(&dev, steps, n);
    let mut want_b = vec![0u32; n / 32];
    for (i, &v0) in x.iter().enumerate() {
        let (mut v, mut k) = (v0, 0);
        while v != 1 {
            v = if v & 1 == 1 { 3 * v + 1 } else { v >> 1 };
            k += 1;
        }
        assert_eq!(s[i], k, "thread {i}");
        want_b[i / 32] |= (k & 1) << (i % 32);
    }
    assert_eq!(download_u32(&dev, ballots, n / 32), want_b);
}

#[test]
fn local_array_dynamic_index() {
    let mut dev = Device::new();
    let m = load(&mut dev);
    let idx: Vec<u32> = (0..64).map(|i| (i * 13 + 5) % 97).collect();
    let pi = upload_u32(&mut dev, &idx);
    let out = dev.alloc(64 * 4).unwrap();
    dev.launch(m, "local_array", &cfg(1, 64), &[ArgValue::U64(pi), ArgValue::U64(out)]).unwrap();
    let o = download_f32(&dev, out, 64);
    for t in 0..64 {
        let a = (idx[t] % 24) as f32 * 100.0 + t as f32;
        let b = ((idx[t] + 5) % 24) as f32 * 100.0 + t as f32;
        assert_eq!(o[t], a + b, "thread {t}");
    }
}

#[test]
fn device_function_call() {
    let mut dev = Device::new();
    let m = load(&mut dev);
    let n = 50;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
    let px = upload_f32(&mut dev, &x);
    let out = dev.alloc(n * 4).unwrap();
    dev.launch(m, "call_fn", &cfg(1, 64), &[ArgValue::U64(px), ArgValue::U64(out), ArgValue::I32(n as i32)]).unwrap();
    let poly = |x: f32, k: i32| {
        let mut r = 0.0f32;
        for j in 0..=k {
            r = r.mul_add(x, j as f32);
        }
        r
    };
    let o = download_f32(&dev, out, n);
    for i in 0..n {
        let want = poly(x[i], i as i32 % 4) + poly(1.0, 2);
        assert!((o[i] - want).abs() <= want.abs() * 1e-6, "element {i}: {} vs {want}", o[i]);
    }
}

#[test]
fn poison_visible_in_unwritten_shared() {
    let mut dev = Device::new();
    let m = load(&mut dev);
    let out = dev.alloc(64 * 4).unwrap();
    dev.launch(m, "read_poison", &cfg(1, 64), &[ArgValue::U64(out)]).unwrap();
    let o = download_u32(&dev, out, 64);
    assert_eq!(o[0], 7);
    assert!(o[1..].iter().all(|&v| v == 0xFFFF_FFFF), "{o:x?}");
}

#[test]
fn out_of_bounds_store_reported() {
    let mut dev = Device::new();
    let m = load(&mut dev);
    let out = dev.alloc(100 * 4).unwrap();
    let e = dev.launch(m, "oob_store", &cfg(1, 128), &[ArgValue::U64(out), ArgValue::I32(100)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Memory);
    let msg = e.message;
    assert!(msg.contains("out of bounds global store of 4 bytes"), "{msg}");
    assert!(msg.contains("kernel oob_store"), "{msg}");
    assert!(msg.contains("CTA (0,0,0)"), "{msg}");
    assert!(msg.contains("thread (100,0,0)"), "{msg}");
    assert!(msg.contains("line "), "{msg}");
    assert!(msg.contains(&format!("{:#x}", out + 400)), "{msg}");
    assert!(msg.contains(&format!("nearest allocation {:#x}+400 (offset 400)", out)), "{msg}");
    assert!(msg.contains("st.global."), "{msg}");
}

#[test]
fn param_mismatch_reported() {
    let mut dev = Device::new();
    let m = dev.load_module("vadd", VADD).unwrap();
    let e = dev.launch(m, "vadd", &cfg(1, 32), &[ArgValue::U64(0), ArgValue::U64(0), ArgValue::U64(0)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Launch);
    assert!(e.message.contains("vadd") && e.message.contains("expects 4 arguments"), "{}", e.message);
    let e = dev
        .launch(m, "vadd", &cfg(1, 32), &[ArgValue::U64(0), ArgValue::U64(0), ArgValue::U64(0), ArgValue::U64(5)])
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Launch);
    assert!(e.message.contains("vadd_param_3") && e.message.contains("4 bytes"), "{}", e.message);
    let e = dev.launch(m, "nope", &cfg(1, 32), &[]).unwrap_err();
    assert!(e.message.contains("unknown kernel `nope`"), "{}", e.message);
    let e = dev
        .launch(m, "vadd", &cfg(1, 2048), &[ArgValue::U64(0), ArgValue::U64(0), ArgValue::U64(0), ArgValue::I32(0)])
        .unwrap_err();
    assert!(e.message.contains("block"), "{}", e.message);
}

#[test]
fn warp_intrinsics() {
    let mut dev = Device::new();
    let m = load(&mut dev);
    let nt = 64usize;
    let x: Vec<u32> = (0..nt as u32).map(|i| (i * 37 + 11) % 150 + 1).collect();
    let px = upload_u32(&mut dev, &x);
    let out = dev.alloc(nt * 12 * 4).unwrap();
    dev.launch(m, "warp_ops", &cfg(1, nt as u32), &[ArgValue::U64(px), ArgValue::U64(out)]).unwrap();
    let o = download_u32(&dev, out, nt * 12);
    let orr = x.iter().any(|&v| v == 77) as u32;
    let cnt = x.iter().filter(|&&v| v & 1 == 1).count() as u32;
    for t in 0..nt {
        let w = t / 32 * 32;
        let lane = t % 32;
        let wx = &x[w..w + 32];
        let r = &o[t * 12..t * 12 + 12];
        assert_eq!(r[0], wx.iter().any(|&v| v > 100) as u32, "any t{t}");
        assert_eq!(r[1], 1, "all t{t}");
        let mut mt = 0u32;
        for (j, &v) in wx.iter().enumerate() {
            if v & 3 == x[t] & 3 {
                mt |= 1 << j;
            }
        }
        assert_eq!(r[2], mt, "match t{t}");
        assert_eq!(r[3], wx.iter().sum::<u32>(), "sum t{t}");
        assert_eq!(r[4], *wx.iter().max().unwrap(), "max t{t}");
        assert_eq!(r[5], orr, "or t{t}");
        assert_eq!(r[6], cnt, "count t{t}");
        assert_eq!(r[7], if lane < 10 { 0x3FF } else { 0 }, "activemask t{t}");
        assert_eq!(r[8], if lane >= 3 { x[t - 3] } else { x[t] }, "up t{t}");
        assert_eq!(r[9], wx[(lane * 7) & 31], "idx t{t}");
        let seg_ok = (lane % 8) + 2 < 8;
        assert_eq!(r[10], if seg_ok { x[t + 2] } else { x[t] }, "segmented down t{t}");
        let v = x[t];
        let ffs = if v == 0 { 0 } else { v.trailing_zeros() + 1 };
        assert_eq!(r[11], v.count_ones().wrapping_add(v.leading_zeros()).wrapping_add(v.reverse_bits()).wrapping_add(ffs), "bits t{t}");
    }
}

#[test]
fn float_math_and_conversions() {
    let mut dev = Device::new();
    let m = load(&mut dev);
    let x: Vec<f32> = vec![1.5, -2.25, 3.3, 1e-3, -7.5, 100.7, 0.3333, -0.5];
    let n = x.len();
    let px = upload_f32(&mut dev, &x);
    let out = dev.alloc(n * 8 * 4).unwrap();
    let bits = dev.alloc(n * 4 * 4).unwrap();
    dev.launch(m, "float_ops", &cfg(1, n as u32), &[ArgValue::U64(px), ArgValue::U64(out), ArgValue::U64(bits)]).unwrap();
    let o = download_f32(&dev, out, n * 8);
    let b = download_u32(&dev, bits, n * 4);
    for (t, &v) in x.iter().enumerate() {
        let r = &o[t * 8..t * 8 + 8];
        // round toward zero of v + 1e-8: v itself for these magnitudes (|v| >> 1e-8).
        let rz = dsv4_emu::num::add_f32(v, 1e-8, dsv4_emu::num::Rnd::Rz);
        assert_eq!(r[0], rz, "rz t{t}");
        assert_eq!(r[1], dsv4_emu::num::mul_f32(v, 3.3, dsv4_emu::num::Rnd::Rm), "rm t{t}");
        assert_eq!(r[2], v.abs().sqrt(), "sqrt t{t}");
        assert_eq!(r[3], 1.0 / v, "div t{t}");
        assert_eq!(r[4], v.max(0.5) + v.min(-0.5), "minmax t{t}");
        let rint = {
            let f = v.floor();
            let d = v - f;
            if d > 0.5 || (d == 0.5 && f % 2.0 != 0.0) {
                f + 1.0
            } else {
                f
            }
        };
        assert_eq!(r[5], rint + v.trunc() + v.floor() + v.ceil(), "round t{t}");
        assert_eq!(r[6], half::bf16::from_f32(v).to_f32(), "bf16 t{t}");
        assert_eq!(r[7], half::f16::from_f32(v).to_f32(), "f16 t{t}");
        let bb = &b[t * 4..t * 4 + 4];
        assert_eq!(bb[0], v as i32 as u32, "f2i t{t}");
        assert_eq!(bb[1], ((v * 10.0).round_ties_even()) as i32 as u32, "f2i rn t{t}");
        let lo = half::bf16::from_f32(v).to_bits() as u32;
        let hi = half::bf16::from_f32(-v).to_bits() as u32;
        assert_eq!(bb[2], lo | hi << 16, "bf16x2 t{t}");
        assert_eq!(bb[3], (v * 1e6) as i64 as u32, "f2ll t{t}");
    }
}

fn ptx(body: &str) -> String {
    format!(".version 8.4\n.target sm_90a\n.address_size 64\n\n{body}")
}

#[test]
fn divergent_shfl_rejected() {
    let src = ptx(r#"
.visible .entry bad_shfl(.param .u64 out)
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    .reg .b64 %rd<3>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    setp.lt.u32 %p1, %r1, 16;
    @!%p1 bra DONE;
    shfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd2, %rd1, %rd2;
    st.global.u32 [%rd2], %r2;
DONE:
    ret;
}
"#);
    let mut dev = Device::new();
    let m = dev.load_module("bad", &src).unwrap();
    let out = dev.alloc(128).unwrap();
    let e = dev.launch(m, "bad_shfl", &cfg(1, 32), &[ArgValue::U64(out)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Convergence, "{}", e.message);
    assert!(e.message.contains("shfl.sync"), "{}", e.message);
    // The same shuffle with the right mask is fine.
    let ok = src.replace("31, -1;", "31, 0xffff;");
    let m = dev.load_module("ok", &ok).unwrap();
    dev.launch(m, "bad_shfl", &cfg(1, 32), &[ArgValue::U64(out)]).unwrap();
    let o = download_u32(&dev, out, 16);
    assert_eq!(o, (0..16u32).map(|i| i ^ 1).collect::<Vec<_>>());
}

#[test]
fn membermask_naming_exited_lanes_rejected() {
    let src = ptx(r#"
.visible .entry k()
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 16;
    @%p1 exit;
    shfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;
    ret;
}
"#);
    let mut dev = Device::new();
    let m = dev.load_module("m", &src).unwrap();
    let e = dev.launch(m, "k", &cfg(1, 32), &[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Convergence, "{}", e.message);
    assert!(e.message.contains("exited"), "{}", e.message);
}

#[test]
fn barrier_deadlock_reported() {
    let src = ptx(r#"
.visible .entry dead()
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    mov.u32 %r1, %tid.x;
    setp.lt.u32 %p1, %r1, 32;
    @%p1 bra W0;
    bar.sync 1;
    ret;
W0:
    bar.sync 0;
    ret;
}
"#);
    let mut dev = Device::new();
    let m = dev.load_module("dead", &src).unwrap();
    let e = dev.launch(m, "dead", &cfg(1, 64), &[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Deadlock, "{}", e.message);
    let msg = &e.message;
    assert!(msg.contains("deadlock") && msg.contains("kernel dead"), "{msg}");
    assert!(msg.contains("warp 0: waiting at barrier 0") && msg.contains("warp 1: waiting at barrier 1"), "{msg}");
    assert!(msg.contains("line"), "{msg}");
}

#[test]
fn named_barriers_with_counts() {
    // Warps 0 and 1 sync on barrier 1 (64 threads) while warps 2 and 3 sync on barrier 2;
    // then everyone meets at barrier 0. Producer/consumer through shared memory.
    let src = ptx(r#"
.visible .entry named(.param .u64 out)
{
    .reg .pred %p<3>;
    .reg .b32 %r<10>;
    .reg .b64 %rd<4>;
    .shared .align 4 .b32 buf[128];
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    shl.b32 %r2, %r1, 2;
    mov.u32 %r3, buf;
    add.u32 %r4, %r3, %r2;
    st.shared.u32 [%r4], %r1;
    setp.lt.u32 %p1, %r1, 64;
    @%p1 bra LOW;
    bar.sync 2, 64;
    bra JOIN;
LOW:
    bar.sync 1, 64;
JOIN:
    xor.b32 %r5, %r1, 32;
    shl.b32 %r5, %r5, 2;
    add.u32 %r5, %r3, %r5;
    ld.shared.u32 %r6, [%r5];
    bar.sync 0;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r6;
    ret;
}
"#);
    let mut dev = Device::new();
    let m = dev.load_module("named", &src).unwrap();
    let out = dev.alloc(128 * 4).unwrap();
    dev.launch(m, "named", &cfg(1, 128), &[ArgValue::U64(out)]).unwrap();
    let o = download_u32(&dev, out, 128);
    assert_eq!(o, (0..128u32).map(|i| i ^ 32).collect::<Vec<_>>());
}

#[test]
fn livelock_budget() {
    let src = ptx(r#"
.visible .entry spin()
{
L:
    bra L;
}
"#);
    let mut dev = Device::new();
    dev.set_budget(1_000_000);
    let m = dev.load_module("spin", &src).unwrap();
    let e = dev.launch(m, "spin", &cfg(1, 32), &[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Deadlock);
    assert!(e.message.contains("budget") && e.message.contains("kernel spin"), "{}", e.message);
}

#[test]
fn unsupported_rejected_at_load_with_line() {
    let src = ptx(r#"
.visible .entry k()
{
    .reg .b32 %r<4>;
    mov.u32 %r1, %tid.x;
    frobnicate.b32 %r2, %r1;
    ret;
}
"#);
    let mut dev = Device::new();
    let e = dev.load_module("m", &src).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("line 10: unsupported instruction `frobnicate.b32 %r2, %r1;`"), "{}", e.message);
    let u = dsv4_emu::coverage::unsupported(&src);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].0, 10);
    // Forbidden special registers are rejected too.
    let src2 = ptx(".visible .entry k()\n{\n .reg .b32 %r<2>;\n mov.u32 %r1, %clock;\n ret;\n}\n");
    let e = dev.load_module("m", &src2).unwrap_err();
    assert!(e.message.contains("%clock"), "{}", e.message);
}

#[test]
fn coverage_forms() {
    let f = dsv4_emu::coverage::forms(KERNELS).unwrap();
    assert!(f.contains("shfl.sync.down.b32"), "{f:?}");
    assert!(f.contains("ld.global.u32"), "{f:?}");
    assert!(dsv4_emu::coverage::unsupported(KERNELS).is_empty());
    assert!(dsv4_emu::coverage::unsupported(VADD).is_empty());
}

const ALU_LOOP: &str = r#"
.version 8.4
.target sm_90a
.address_size 64

.visible .entry alu(.param .u64 out, .param .u32 iters)
{
    .reg .pred %p<2>;
    .reg .b32 %r<10>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    ld.param.u32 %r1, [iters];
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, 0;
    mov.u32 %r4, 1;
L:
    mad.lo.s32 %r4, %r4, 1664525, %r2;
    xor.b32 %r5, %r4, %r3;
    shr.u32 %r6, %r5, 3;
    add.s32 %r3, %r3, %r6;
    add.s32 %r1, %r1, -1;
    setp.ne.s32 %p1, %r1, 0;
    @%p1 bra L;
    mov.u32 %r7, %ctaid.x;
    mov.u32 %r8, %ntid.x;
    mad.lo.s32 %r9, %r7, %r8, %r2;
    mul.wide.u32 %rd2, %r9, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r3;
    ret;
}
"#;

fn alu_ref(tid: u32, iters: u32) -> u32 {
    let (mut r3, mut r4) = (0u32, 1u32);
    for _ in 0..iters {
        r4 = r4.wrapping_mul(1664525).wrapping_add(tid);
        r3 = r3.wrapping_add((r4 ^ r3) >> 3);
    }
    r3
}

#[test]
fn alu_loop_correct() {
    let mut dev = Device::new();
    let m = dev.load_module("alu", ALU_LOOP).unwrap();
    let out = dev.alloc(2 * 128 * 4).unwrap();
    let st = dev.launch(m, "alu", &cfg(2, 128), &[ArgValue::U64(out), ArgValue::U32(100)]).unwrap();
    let o = download_u32(&dev, out, 256);
    for i in 0..256 {
        assert_eq!(o[i], alu_ref((i % 128) as u32, 100), "thread {i}");
    }
    // The final, predicated-off `bra` has no active lanes.
    assert_eq!(st.thread_insts, 256 * (5 + 7 * 100 + 7 - 1));
}

/// `cargo test -p dsv4-emu --release --test exec -- --ignored --nocapture speed`
#[test]
#[ignore]
fn speed_scalar_loop() {
    let mut dev = Device::new();
    let m = dev.load_module("alu", ALU_LOOP).unwrap();
    let out = dev.alloc(64 * 256 * 4).unwrap();
    let iters = 2000u32;
    let t = std::time::Instant::now();
    let st = dev.launch(m, "alu", &cfg(64, 256), &[ArgValue::U64(out), ArgValue::U32(iters)]).unwrap();
    let dt = t.elapsed().as_secs_f64();
    let o = download_u32(&dev, out, 64 * 256);
    assert_eq!(o[300], alu_ref(300 % 256, iters));
    println!("{} thread-insts in {:.3}s: {:.1} M thread-insts/s", st.thread_insts, dt, st.thread_insts as f64 / dt / 1e6);
}

const TENSOR: &str = include_str!("exec_fixtures/tensor.ptx");

fn bf16_bits(v: f32) -> u16 {
    half::bf16::from_f32(v).to_bits()
}

#[test]
fn mma_ldmatrix_cp_async() {
    let mut dev = Device::new();
    let m = dev.load_module("tensor", TENSOR).unwrap();
    // Small integers: every product and partial sum is exact in bf16 x bf16 -> f32.
    let a: Vec<f32> = (0..256).map(|i| ((i * 7 + 3) % 9) as f32 - 4.0).collect(); // A[m][k], 16x16
    let bt: Vec<f32> = (0..128).map(|i| ((i * 5 + 1) % 7) as f32 - 3.0).collect(); // Bt[n][k], 8x16
    let to_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| bf16_bits(*x).to_le_bytes()).collect() };
    let pa = dev.alloc(512).unwrap();
    dev.write(pa, &to_bytes(&a)).unwrap();
    let pb = dev.alloc(256).unwrap();
    dev.write(pb, &to_bytes(&bt)).unwrap();
    let pd = dev.alloc(128 * 4).unwrap();
    let st = dev.launch(m, "mma_bf16", &cfg(1, 32), &[ArgValue::U64(pa), ArgValue::U64(pb), ArgValue::U64(pd)]).unwrap();
    let d = download_f32(&dev, pd, 128);
    for mm in 0..16 {
        for n in 0..8 {
            let want: f32 = (0..16).map(|k| a[mm * 16 + k] * bt[n * 16 + k]).sum();
            assert_eq!(d[mm * 8 + n], want, "D[{mm}][{n}]");
        }
    }
    assert_eq!(st.tensor_flops, 2 * 16 * 8 * 16);
}

#[test]
fn cp_async_waits_and_zero_fills() {
    let mut dev = Device::new();
    let m = dev.load_module("tensor", TENSOR).unwrap();
    let src: Vec<u32> = (0..128).map(|i| 1000 + i).collect();
    let ps = upload_u32(&mut dev, &src);
    let out = dev.alloc(32 * 5 * 4).unwrap();
    dev.launch(m, "cp_async_zfill", &cfg(1, 32), &[ArgValue::U64(ps), ArgValue::U64(out)]).unwrap();
    let o = download_u32(&dev, out, 160);
    for l in 0..32 {
        assert_eq!(o[5 * l], 0xFFFF_FFFF, "lane {l} saw the copy before the wait");
        let words = l % 5; // src-size / 4
        for k in 0..4 {
            let want = if k < words { src[4 * l + k] } else { 0 };
            assert_eq!(o[5 * l + 1 + k], want, "lane {l} word {k}");
        }
    }
}

#[test]
fn bit_manipulation() {
    let mut dev = Device::new();
    let m = dev.load_module("tensor", TENSOR).unwrap();
    let nt = 64usize;
    let mut seed = 0x1234_5678u32;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let x: Vec<u32> = (0..2 * nt).map(|_| rnd()).collect();
    let px = upload_u32(&mut dev, &x);
    let out = dev.alloc(nt * 20 * 4).unwrap();
    dev.launch(m, "bit_ops", &cfg(1, nt as u32), &[ArgValue::U64(px), ArgValue::U64(out)]).unwrap();
    let o = download_u32(&dev, out, nt * 20);
    for t in 0..nt {
        let (a, b) = (x[2 * t], x[2 * t + 1]);
        let tu = t as u32;
        let r = &o[20 * t..20 * t + 20];
        let tmp = ((b as u64) << 32) | a as u64;
        let byte = |i: u32| ((tmp >> (8 * (i & 7))) & 0xFF) as u32;
        let perm = |f: &dyn Fn(u32) -> u32| (0..4).map(|i| byte(f(i)) << (8 * i)).sum::<u32>();
        let s = b & 0x7777; // __byte_perm masks the selectors (see the PTX)
        let generic = (0..4)
            .map(|i| {
                let sel = (s >> (4 * i)) & 0xF;
                let v = byte(sel);
                let v = if sel & 8 != 0 { if v & 0x80 != 0 { 0xFF } else { 0 } } else { v };
                v << (8 * i)
            })
            .sum::<u32>();
        assert_eq!(r[0], generic, "prmt t{t}");
        let c = tu & 3;
        assert_eq!(r[1], perm(&|i| (c + i) & 7), "f4e t{t}");
        assert_eq!(r[2], perm(&|i| c.wrapping_sub(i) & 7), "b4e t{t}");
        assert_eq!(r[3], perm(&|i| i.max(c)), "ecl t{t}");
        assert_eq!(r[4], perm(&|i| (c & 1) * 2 + (i & 1)), "rc16 t{t}");
        let cc = a ^ b ^ tu;
        assert_eq!(r[5], (a & b) | (a & cc) | (b & cc), "lop3 t{t}");
        assert_eq!(r[6], ((tmp << (tu & 31)) >> 32) as u32, "shf.l t{t}");
        assert_eq!(r[7], (tmp >> (tu * 3).min(32)) as u32, "shf.r.clamp t{t}");
        let (pos, len) = (tu % 32, (b % 40) as u64);
        let bfe_u = (((a as u64) >> pos) & ((1u64 << len) - 1)) as u32;
        assert_eq!(r[8], bfe_u, "bfe.u32 t{t}");
        let bfe_s = if len == 0 {
            0
        } else if pos as u64 + len >= 32 {
            ((a as i32) >> pos) as u32
        } else {
            let v = bfe_u as u64;
            (((v << (64 - len)) as i64) >> (64 - len)) as u32
        };
        assert_eq!(r[9], bfe_s, "bfe.s32 t{t}");
        let (p2, l2) = ((tu % 32) as u64, (tu % 13) as u64);
        let mask = ((1u64 << l2) - 1) << p2;
        assert_eq!(r[10], ((b as u64 & !mask) | ((a as u64) << p2 & mask)) as u32, "bfi t{t}");
        assert_eq!(r[11], ((a as u64 * b as u64) >> 32) as u32, "umulhi t{t}");
        assert_eq!(r[12], ((a as i32 as i64 * b as i32 as i64) >> 32) as u32, "mulhi t{t}");
        assert_eq!(r[13], a.abs_diff(b).wrapping_add(tu), "usad t{t}");
        let aa = ((a as u64) << 32) | b as u64;
        let bb = ((b as u64) << 17) ^ a as u64;
        let (q, mm) = (aa / (bb | 1), aa % (bb | 1));
        assert_eq!(r[14], q as u32 ^ (q >> 32) as u32, "div.u64 t{t}");
        assert_eq!(r[15], mm as u32 ^ (mm >> 32) as u32, "rem.u64 t{t}");
        let (sa, sb) = (aa as i64, -((bb | 1) as i64));
        assert_eq!(r[16], (sa.wrapping_div(sb)) as u32 ^ ((sa.wrapping_rem(sb)) >> 7) as u32, "div.s64 t{t}");
        let hi = ((aa as u128 * bb as u128) >> 64) as u64;
        assert_eq!(r[17], (hi as u32).wrapping_add(aa.leading_zeros()).wrapping_add(bb.count_ones()), "mul.hi.u64 t{t}");
        let (ai, bi) = (a as i32, (b as i32) | 1);
        assert_eq!(r[18], ai.wrapping_div(bi).wrapping_add(ai.wrapping_rem(bi)) as u32, "div.s32 t{t}");
        let sh = tu % 64;
        assert_eq!(r[19], ((aa >> sh).wrapping_add(((aa as i64) >> sh) as u64).wrapping_add(aa << sh)) as u32, "shifts t{t}");
    }
}

#[test]
fn fp8_conversions() {
    let mut dev = Device::new();
    let m = dev.load_module("tensor", TENSOR).unwrap();
    let x: Vec<f32> = vec![0.0, -0.0, 1.0, -1.5, 448.0, 500.0, -1e6, 0.001, 57344.0, 1e9, 3.141, -2.718, f32::NAN, 0.0625, 240.0, -0.3];
    let n = x.len() / 2;
    let px = upload_f32(&mut dev, &x);
    let out = dev.alloc(n * 16).unwrap();
    dev.launch(m, "fp8_cvt", &cfg(1, n as u32), &[ArgValue::U64(px), ArgValue::U64(out)]).unwrap();
    let o = download_u32(&dev, out, n * 4);
    use dsv4_emu::num;
    for t in 0..n {
        let (lo, hi) = (x[2 * t], x[2 * t + 1]);
        let e4 = num::f32_to_e4m3(lo, true) as u32 | (num::f32_to_e4m3(hi, true) as u32) << 8;
        let e5 = num::f32_to_e5m2(lo, true) as u32 | (num::f32_to_e5m2(hi, true) as u32) << 8;
        assert_eq!(o[4 * t], e4, "e4m3x2 t{t}");
        assert_eq!(o[4 * t + 1], e5, "e5m2x2 t{t}");
        let h4 = num::e4m3_to_f16(e4 as u8) as u32 | (num::e4m3_to_f16((e4 >> 8) as u8) as u32) << 16;
        let h5 = num::e5m2_to_f16(e5 as u8) as u32 | (num::e5m2_to_f16((e5 >> 8) as u8) as u32) << 16;
        assert_eq!(o[4 * t + 2], h4, "e4m3x2->f16x2 t{t}");
        assert_eq!(o[4 * t + 3], h5, "e5m2x2->f16x2 t{t}");
    }
    // Saturation: 500 -> 448 (0x7E), -1e6 -> -448 (0xFE).
    assert_eq!(o[4 * 2] & 0xFF, 0x7E);
    assert_eq!(o[4 * 3] & 0xFF, 0xFE);
}

const MISC: &str = include_str!("exec_fixtures/misc.ptx");

#[test]
fn grid_constant_generic_pointers_dynamic_smem() {
    let mut dev = Device::new();
    let m = dev.load_module("misc", MISC).unwrap();
    let params = dev.params(m, "generic_mem").unwrap();
    assert_eq!(params[0].size, 68);
    let mut table = Vec::new();
    for k in 0..16 {
        table.extend_from_slice(&(k as f32 * 0.5).to_le_bytes());
    }
    table.extend_from_slice(&1000i32.to_le_bytes());
    let idx: Vec<u32> = (0..32).map(|i| (i * 11 + 2) % 50).collect();
    let pidx = upload_u32(&mut dev, &idx);
    for use_shared in [1, 0] {
        let out = dev.alloc(96 * 4).unwrap();
        let glob: Vec<f32> = (0..32).map(|i| i as f32 * 100.0).collect();
        let bytes: Vec<u8> = glob.iter().flat_map(|x| x.to_le_bytes()).collect();
        dev.write(out + 64 * 4, &bytes).unwrap();
        let lc = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 256 };
        dev.launch(
            m,
            "generic_mem",
            &lc,
            &[ArgValue::Bytes(table.clone()), ArgValue::U64(pidx), ArgValue::U64(out), ArgValue::I32(use_shared)],
        )
        .unwrap();
        let o = download_f32(&dev, out, 34);
        for i in 0..32 {
            let a = (idx[i] % 16) as f32 * 0.5 + 1000.0;
            let j = (i * 7) % 32;
            let p = if use_shared == 1 {
                if i & 1 == 1 {
                    j as f32 * 3.0
                } else {
                    j as f32 * 5.0
                }
            } else {
                glob[j]
            };
            assert_eq!(o[i], a + p, "use_shared={use_shared} thread {i}");
        }
        assert_eq!(o[32], 256.0);
        assert_eq!(o[33], 0.0, "dynamic smem is 16-byte aligned");
    }
    // Too much shared memory is a launch error.
    let lc = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 240_000 };
    let e = dev
        .launch(m, "generic_mem", &lc, &[ArgValue::Bytes(table), ArgValue::U64(pidx), ArgValue::U64(0), ArgValue::I32(1)])
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Launch);
    assert!(e.message.contains("shared memory"), "{}", e.message);
}

#[test]
fn two_dimensional_launch() {
    let mut dev = Device::new();
    let m = dev.load_module("misc", MISC).unwrap();
    let (bx, by, gx, gy) = (8u32, 6u32, 3u32, 2u32);
    let width = bx * gx;
    let out = dev.alloc((width * by * gy * 4) as usize).unwrap();
    let lc = LaunchConfig { grid: [gx, gy, 1], block: [bx, by, 1], dynamic_smem: 0 };
    dev.launch(m, "grid2d", &lc, &[ArgValue::U64(out), ArgValue::I32(width as i32)]).unwrap();
    let o = download_u32(&dev, out, (width * by * gy) as usize);
    for y in 0..by * gy {
        for x in 0..width {
            let want = ((y / by) << 24) | ((y % by) << 16) | ((x / bx) << 8) | (x % bx);
            assert_eq!(o[(y * width + x) as usize], want, "({x},{y})");
        }
    }
}

#[test]
fn half_arithmetic() {
    use half::{bf16, f16};
    let mut dev = Device::new();
    let m = dev.load_module("misc", MISC).unwrap();
    let vals = [1.5f32, -2.25, 0.1, 3.0e4, -1e-5, 65504.0, 0.0, -0.0, 7.0, 1.0 / 3.0, 2.5e-3, -100.0];
    let nt = 32;
    let mut x = Vec::new();
    for t in 0..2 * nt {
        let lo = vals[t % vals.len()];
        let hi = vals[(t * 5 + 1) % vals.len()];
        x.push(f16::from_f32(lo).to_bits() as u32 | (f16::from_f32(hi).to_bits() as u32) << 16);
    }
    // Half of the inputs as bf16 pairs instead (same bits interpreted both ways is fine too).
    let px = upload_u32(&mut dev, &x);
    let out = dev.alloc(nt * 9 * 4).unwrap();
    dev.launch(m, "half_ops", &cfg(1, nt as u32), &[ArgValue::U64(px), ArgValue::U64(out)]).unwrap();
    let o = download_u32(&dev, out, nt * 9);
    let h = |b: u32| f16::from_bits(b as u16);
    let bb = |b: u32| bf16::from_bits(b as u16);
    let canon_h = |v: f16| if v.is_nan() { 0x7FFF } else { v.to_bits() as u32 };
    let canon_b = |v: bf16| if v.is_nan() { 0x7FFF } else { v.to_bits() as u32 };
    let pair_h = |a: u32, b: u32, f: &dyn Fn(f16, f16) -> f16| {
        canon_h(f(h(a), h(b))) | canon_h(f(h(a >> 16), h(b >> 16))) << 16
    };
    let pair_b = |a: u32, b: u32, f: &dyn Fn(bf16, bf16) -> bf16| {
        canon_b(f(bb(a), bb(b))) | canon_b(f(bb(a >> 16), bb(b >> 16))) << 16
    };
    // Single rounding from the exact result: f64 holds every product/sum of two halves exactly.
    let rh = |v: f64| f16::from_f64(v);
    let rb = |v: f64| bf16::from_f64(v);
    for t in 0..nt {
        let (a, b) = (x[2 * t], x[2 * t + 1]);
        let r = &o[9 * t..9 * t + 9];
        assert_eq!(r[0], pair_h(a, b, &|p, q| rh(p.to_f64() + q.to_f64())), "hadd2 t{t}");
        assert_eq!(r[1], pair_h(a, b, &|p, q| rh(p.to_f64() * q.to_f64())), "hmul2 t{t}");
        assert_eq!(r[2], pair_h(a, b, &|p, q| rh(p.to_f64() * q.to_f64() + p.to_f64())), "hfma2 t{t}");
        assert_eq!(r[3], pair_h(a, b, &|p, q| rh(p.to_f64() - q.to_f64())), "hsub2 t{t}");
        assert_eq!(r[4], pair_b(a, b, &|p, q| rb(p.to_f64() + q.to_f64())), "badd2 t{t}");
        assert_eq!(r[5], pair_b(a, b, &|p, q| rb(p.to_f64() * q.to_f64())), "bmul2 t{t}");
        assert_eq!(r[6], pair_b(a, b, &|p, q| rb(p.to_f64() * q.to_f64() + q.to_f64())), "bfma2 t{t}");
        assert_eq!(r[7], pair_b(a, b, &|p, q| if p.to_f32() >= q.to_f32() { p } else { q }), "bmax2 t{t}");
        assert_eq!(r[8], (a as u16 ^ 0x8000) as u32, "hneg t{t}");
    }
}

#[test]
fn atomics_all_flavours() {
    let mut dev = Device::new();
    let m = dev.load_module("misc", MISC).unwrap();
    let nt = 96usize;
    let x: Vec<f32> = (0..nt).map(|i| ((i * 37) % 101) as f32 * 0.25 - 10.0).collect();
    let px = upload_f32(&mut dev, &x);
    let fmax = upload_f32(&mut dev, &[-1e30]);
    let u = upload_u32(&mut dev, &[0, 50, 0, 0, u32::MAX, 0, 0, 0, 0, 0]);
    let ull = dev.alloc(8).unwrap();
    dev.write(ull, &5u64.to_le_bytes()).unwrap();
    let dsum = dev.alloc(8).unwrap();
    dev.write(dsum, &0f64.to_le_bytes()).unwrap();
    let imin = upload_u32(&mut dev, &[i32::MAX as u32]);
    dev.launch(
        m,
        "atomics",
        &cfg(1, nt as u32),
        &[ArgValue::U64(px), ArgValue::U64(fmax), ArgValue::U64(u), ArgValue::U64(ull), ArgValue::U64(dsum), ArgValue::U64(imin)],
    )
    .unwrap();
    assert_eq!(download_f32(&dev, fmax, 1)[0], x.iter().cloned().fold(f32::MIN, f32::max));
    let uo = download_u32(&dev, u, 10);
    // atomicInc wraps to 0 after 9: 96 increments from 0 -> 96 % 10.
    assert_eq!(uo[0], 96 % 10);
    // atomicDec(…, 100) from 50: 50 decrements to 0, then wraps to 100 and counts down.
    let mut v = 50u32;
    for _ in 0..nt {
        v = if v == 0 || v > 100 { 100 } else { v - 1 };
    }
    assert_eq!(uo[1], v);
    assert!(uo[2] < nt as u32);
    assert_eq!(uo[3], u32::MAX);
    assert_eq!(uo[4], 0);
    assert_eq!(uo[5], (0..nt as u32).fold(0, |a, b| a ^ b));
    assert_eq!(uo[6], nt as u32 - 1);
    assert_eq!(uo[7], 2 * nt as u32);
    assert!(uo[8] >= 1 && uo[8] <= nt as u32);
    assert_eq!(uo[9], uo[8], "exactly the CAS winner reports");
    let mut b8 = [0u8; 8];
    dev.read(ull, &mut b8).unwrap();
    assert_eq!(u64::from_le_bytes(b8), 5 + (0..nt as u64).map(|t| t << 33).sum::<u64>());
    dev.read(dsum, &mut b8).unwrap();
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    assert!((f64::from_le_bytes(b8) - want).abs() < 1e-9);
    let im = download_u32(&dev, imin, 1)[0] as i32;
    assert_eq!(im, x.iter().map(|&v| (v * 100.0) as i32).min().unwrap());
}

#[test]
fn collective_waits_for_lanes_laid_out_later() {
    // Even lanes reach the shuffle first (lower PC); odd lanes run the else-block placed after
    // it and jump back. The even lanes must wait at the shuffle, not fail.
    let src = ptx(r#"
.visible .entry park(.param .u64 out)
{
    .reg .pred %p<2>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %laneid;
    mov.u32 %r2, 100;
    and.b32 %r4, %r1, 1;
    setp.ne.u32 %p1, %r4, 0;
    @%p1 bra ODD;
JOIN:
    add.u32 %r2, %r2, %r1;
    shfl.sync.bfly.b32 %r3, %r2, 1, 31, -1;
    bar.warp.sync -1;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r3;
    ret;
ODD:
    mov.u32 %r2, 1000;
    bra.uni JOIN;
}
"#);
    let mut dev = Device::new();
    let m = dev.load_module("park", &src).unwrap();
    let out = dev.alloc(128).unwrap();
    dev.launch(m, "park", &cfg(1, 32), &[ArgValue::U64(out)]).unwrap();
    let o = download_u32(&dev, out, 32);
    for l in 0..32u32 {
        let partner = l ^ 1;
        let want = if partner & 1 == 1 { 1000 + partner } else { 100 + partner };
        assert_eq!(o[l as usize], want, "lane {l}");
    }
}

#[test]
fn misaligned_access_reported() {
    let src = ptx(r#"
.visible .entry mis(.param .u64 out)
{
    .reg .b64 %rd<3>;
    .reg .b32 %r<2>;
    ld.param.u64 %rd1, [out];
    add.s64 %rd2, %rd1, 2;
    mov.u32 %r1, 5;
    st.global.u32 [%rd2], %r1;
    ret;
}
"#);
    let mut dev = Device::new();
    let m = dev.load_module("mis", &src).unwrap();
    let out = dev.alloc(64).unwrap();
    let e = dev.launch(m, "mis", &cfg(1, 1), &[ArgValue::U64(out)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Memory);
    assert!(e.message.contains("misaligned global store of 4 bytes"), "{}", e.message);
}

#[test]
fn partial_warps_and_early_exit() {
    // 48 threads: warp 1 has 16 lanes. Threads >= 40 exit before the barrier.
    let src = ptx(r#"
.visible .entry part(.param .u64 out)
{
    .reg .pred %p<2>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<4>;
    .shared .align 4 .b32 s[64];
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 40;
    @%p1 exit;
    shl.b32 %r2, %r1, 2;
    mov.u32 %r3, s;
    add.u32 %r3, %r3, %r2;
    st.shared.u32 [%r3], %r1;
    bar.sync 0;
    sub.u32 %r4, 39, %r1;
    shl.b32 %r4, %r4, 2;
    mov.u32 %r5, s;
    add.u32 %r4, %r4, %r5;
    ld.shared.u32 %r5, [%r4];
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r5;
    ret;
}
"#);
    let mut dev = Device::new();
    let m = dev.load_module("part", &src).unwrap();
    let out = dev.alloc(48 * 4).unwrap();
    dev.memset(out, 0, 48 * 4).unwrap();
    dev.launch(m, "part", &cfg(1, 48), &[ArgValue::U64(out)]).unwrap();
    let o = download_u32(&dev, out, 48);
    for i in 0..48u32 {
        assert_eq!(o[i as usize], if i < 40 { 39 - i } else { 0 }, "thread {i}");
    }
}

#[test]
fn early_return_before_barrier_allowed_but_skipping_it_rejected() {
    // Lanes >= 40 branch to a `ret` placed after the barrier: the early-return idiom.
    let early = ptx(r#"
.visible .entry early(.param .u64 out)
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 40;
    @%p1 bra END;
    bar.sync 0;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r1;
END:
    ret;
}
"#);
    let mut dev = Device::new();
    let m = dev.load_module("early", &early).unwrap();
    let out = dev.alloc(64 * 4).unwrap();
    dev.launch(m, "early", &cfg(1, 64), &[ArgValue::U64(out)]).unwrap();
    assert_eq!(download_u32(&dev, out, 40), (0..40).collect::<Vec<u32>>());
    // The same, but the skipping lanes store before exiting: they ran past the barrier.
    let skip = early.replace("@%p1 bra END;", "@%p1 bra AFTER;").replace("    bar.sync 0;\n", "    bar.sync 0;\nAFTER:\n");
    let m = dev.load_module("skip", &skip).unwrap();
    let e = dev.launch(m, "early", &cfg(1, 64), &[ArgValue::U64(out)]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Convergence, "{}", e.message);
    assert!(e.message.contains("bar.sync"), "{}", e.message);
}
