//! mbarrier, bulk copies and TMA on the emulator, checked against plain Rust models.
//!
//! - `tma_box_load_matches_model`: hand-written PTX loads one box of a random 1d-5d tensor map
//!   (random dtype size, dims, padded strides, box, traversal strides, coordinates including
//!   negative and out-of-bounds ones, all swizzle modes) and copies shared memory out; the bytes
//!   are compared with a model written here from the tensor-map definition.
//! - `tma_pipeline_*`: `tests/cuda/tma_pipeline.cu`, a warp-specialised 4-stage mbarrier ring,
//!   a TMA/bulk store, and injected bugs (missing arrive, read before wait, missing fence).
use dsv4_emu::{encode_tensor_map, ArgValue, Device, ErrorKind, LaunchConfig, OobFill, Swizzle, TensorMapDesc, TmapDtype};

const PTX_PIPE: &str = include_str!("ptx/tma_pipeline.ptx");

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

fn box_load_ptx(rank: usize) -> String {
    let cparams: Vec<String> = (0..5).map(|i| format!(".param .s32 c{i}")).collect();
    let cregs: Vec<String> = (0..rank).map(|i| format!("%r{}", 10 + i)).collect();
    format!(
        r#".version 8.4
.target sm_90a
.address_size 64
.visible .entry box_load(
    .param .align 64 .b8 tmap[128],
    .param .u64 out,
    .param .u32 nbytes,
    .param .u32 ncopy,
    {cp}
)
{{
    .reg .pred %p<4>;
    .reg .b32 %r<20>;
    .reg .b64 %rd<8>;
    .shared .align 1024 .b8 sbuf[32768];
    .shared .align 8 .b64 bar;
    mov.u32 %r1, %tid.x;
    ld.param.u32 %r2, [nbytes];
    ld.param.u32 %r8, [ncopy];
    ld.param.s32 %r10, [c0];
    ld.param.s32 %r11, [c1];
    ld.param.s32 %r12, [c2];
    ld.param.s32 %r13, [c3];
    ld.param.s32 %r14, [c4];
    mov.u32 %r3, bar;
    mov.u32 %r4, sbuf;
    mov.b64 %rd5, tmap;
    cvta.param.u64 %rd6, %rd5;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra SYNC;
    mbarrier.init.shared::cta.b64 [%r3], 1;
    fence.mbarrier_init.release.cluster;
    mbarrier.arrive.expect_tx.shared::cta.b64 _, [%r3], %r2;
    cp.async.bulk.tensor.{rank}d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r4], [%rd6, {{{cr}}}], [%r3];
SYNC:
    bar.sync 0;
WAIT:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r3], 0;
    @!%p2 bra WAIT;
    ld.param.u64 %rd2, [out];
    shl.b32 %r5, %r1, 2;
LOOP:
    setp.ge.u32 %p3, %r5, %r8;
    @%p3 bra END;
    add.u32 %r6, %r4, %r5;
    ld.shared.u32 %r7, [%r6];
    cvt.u64.u32 %rd3, %r5;
    add.u64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r7;
    add.u32 %r5, %r5, 128;
    bra LOOP;
END:
    ret;
}}
"#,
        cp = cparams.join(",\n    "),
        cr = cregs.join(", ")
    )
}

/// The model: the box's elements in order (innermost dimension fastest, `ceil(box/estride)`
/// per dimension), element j at coordinate c + j*estride, zero when any coordinate is outside
/// the tensor, placed densely and then permuted by the swizzle on absolute shared addresses.
#[allow(clippy::too_many_arguments)]
fn model(data: &[u8], es: usize, dims: &[u64], strides: &[u64], boxd: &[u32], estr: &[u32], coords: &[i32], sw: Swizzle, nan_fill: bool, smem_base: u32) -> Vec<u8> {
    let rank = dims.len();
    let ext: Vec<usize> = (0..rank).map(|i| (boxd[i] as usize).div_ceil(estr[i] as usize)).collect();
    let n: usize = ext.iter().product();
    // whole 128-byte rows: a swizzle permutes 16-byte chunks within rows of 128 bytes
    let mut out = vec![0xFFu8; (n * es).div_ceil(128) * 128];
    let (bits, span) = match sw {
        Swizzle::None => (0u32, 1u32),
        Swizzle::B32 => (1, 2),
        Swizzle::B64 => (3, 4),
        Swizzle::B128 => (7, 8),
    };
    let _ = span;
    for lin in 0..n {
        let mut r = lin;
        let mut off: Option<u64> = Some(0);
        for i in 0..rank {
            let j = r % ext[i];
            r /= ext[i];
            let c = coords[i] as i64 + (j as i64) * estr[i] as i64;
            if c < 0 || c >= dims[i] as i64 {
                off = None;
            } else if let Some(o) = off {
                off = Some(o + c as u64 * if i == 0 { es as u64 } else { strides[i - 1] });
            }
        }
        let a = smem_base + (lin * es) as u32;
        // 16-byte chunk index within the 128-byte row XOR row index (mod 8/4/2).
        let chunk = (a >> 4) & 7;
        let rowi = (a >> 7) & 7;
        let sa = (a & !0x70) | (((chunk ^ (rowi & bits)) & 7) << 4);
        let dst = (sa - smem_base) as usize;
        match off {
            Some(o) => out[dst..dst + es].copy_from_slice(&data[o as usize..o as usize + es]),
            // NaN fill: all-ones bytes are a NaN in every float format
            None => out[dst..dst + es].fill(if nan_fill { 0xFF } else { 0 }),
        }
    }
    out
}

#[test]
fn tma_box_load_matches_model() {
    let mut dev = Device::new();
    let mods: Vec<_> = (1..=5).map(|r| dev.load_module(&format!("box{r}.ptx"), &box_load_ptx(r)).unwrap()).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let dtypes = [(TmapDtype::U8, 1usize), (TmapDtype::Bf16, 2), (TmapDtype::F32, 4), (TmapDtype::F64, 8)];
    let swz = [Swizzle::None, Swizzle::B32, Swizzle::B64, Swizzle::B128];
    let (mut cases, mut with_data, mut negative) = (0, 0, 0);
    while cases < 200 {
        let rank = rng.range(1, 5) as usize;
        let (dt, es) = dtypes[rng.range(0, 3) as usize];
        let sw = swz[rng.range(0, 3) as usize];
        let max_inner = if sw == Swizzle::None { 256 * es } else { sw_span(sw) };
        // inner box bytes: a multiple of 16, at most the swizzle span and 256 elements
        let units = rng.range(1, (max_inner / 16).min(256 * es / 16) as i64) as usize;
        let box0 = (units * 16 / es) as u32;
        let mut boxd = vec![box0];
        let mut estr = vec![1u32];
        let mut dims = vec![rng.range(1, box0 as i64 * 2 + 3) as u64];
        for _ in 1..rank {
            boxd.push(rng.range(1, 6) as u32);
            estr.push(if rng.range(0, 3) == 0 { rng.range(2, 3) as u32 } else { 1 });
            dims.push(rng.range(1, 9) as u64);
        }
        let ext: usize = (0..rank).map(|i| (boxd[i] as usize).div_ceil(estr[i] as usize)).product();
        let nbytes = ext * es;
        if nbytes > 32768 {
            continue;
        }
        let mut strides = Vec::new();
        let mut s = dims[0] * es as u64;
        for i in 1..rank {
            let st = (s.div_ceil(16) + rng.range(0, 2) as u64) * 16;
            strides.push(st);
            s = st * dims[i];
        }
        let total = s as usize;
        let data: Vec<u8> = (0..total).map(|_| rng.next() as u8).collect();
        let g = dev.alloc(total).unwrap();
        dev.write(g, &data).unwrap();
        let coords: Vec<i32> = (0..rank).map(|i| rng.range(-(boxd[i] as i64) - 2, dims[i] as i64 + 2) as i32).collect();
        let nan_fill = es > 1 && rng.range(0, 4) == 0;
        let oob_fill = if nan_fill { OobFill::NanRequestZeroFma } else { OobFill::None };
        let desc = TensorMapDesc { dtype: dt, global_address: g, dims: dims.clone(), strides: strides.clone(), box_dims: boxd.clone(), element_strides: estr.clone(), swizzle: sw, oob_fill };
        let map = encode_tensor_map(&desc).unwrap_or_else(|e| panic!("{desc:?}: {e}"));
        let ncopy = nbytes.div_ceil(128) * 128;
        let out = dev.alloc(ncopy).unwrap();
        let mut args = vec![ArgValue::Bytes(map.to_vec()), ArgValue::U64(out), ArgValue::U32(nbytes as u32), ArgValue::U32(ncopy as u32)];
        for i in 0..5 {
            args.push(ArgValue::I32(*coords.get(i).unwrap_or(&0)));
        }
        let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
        dev.launch(mods[rank - 1], "box_load", &cfg, &args).unwrap_or_else(|e| panic!("{desc:?} {coords:?}: {e}"));
        let mut got = vec![0u8; ncopy];
        dev.read(out, &mut got).unwrap();
        // sbuf is the first shared variable: 1024-aligned offset 0
        let want = model(&data, es, &dims, &strides, &boxd, &estr, &coords, sw, nan_fill, 0);
        if let Some(i) = (0..ncopy).find(|&i| got[i] != want[i]) {
            panic!("first difference at byte {i}: got {} want {} (of {nbytes})", got[i], want[i]);
        }
        assert_eq!(got, want, "rank {rank} es {es} {sw:?} dims {dims:?} strides {strides:?} box {boxd:?} estr {estr:?} coords {coords:?}");
        dev.free(g).unwrap();
        dev.free(out).unwrap();
        cases += 1;
        if got.iter().zip(&want).any(|(x, _)| *x != 0 && *x != 0xFF) {
            with_data += 1;
        }
        if coords.iter().any(|&c| c < 0) {
            negative += 1;
        }
    }
    assert!(with_data > 40 && negative > 20, "{with_data} cases with in-bounds data, {negative} with negative coordinates");
}

fn sw_span(s: Swizzle) -> usize {
    match s {
        Swizzle::None => 0,
        Swizzle::B32 => 32,
        Swizzle::B64 => 64,
        Swizzle::B128 => 128,
    }
}

#[test]
fn tensor_map_validation() {
    let ok = TensorMapDesc::dense(TmapDtype::F32, 0x1000, &[64, 8], &[32, 8], Swizzle::B128);
    assert!(encode_tensor_map(&ok).is_ok());
    let bad = |f: &dyn Fn(&mut TensorMapDesc)| {
        let mut d = ok.clone();
        f(&mut d);
        encode_tensor_map(&d).expect_err(&format!("{d:?} must be rejected"));
    };
    bad(&|d| d.global_address = 0x1008);
    bad(&|d| d.strides[0] = 264);
    bad(&|d| d.strides[0] = 1 << 40);
    bad(&|d| d.box_dims[1] = 257);
    bad(&|d| d.box_dims[1] = 0);
    bad(&|d| d.box_dims[0] = 6); // 24 bytes: not a multiple of 16
    bad(&|d| d.box_dims[0] = 64); // 256 bytes > 128B swizzle span
    bad(&|d| d.element_strides[1] = 9);
    bad(&|d| {
        d.dims = vec![1; 6];
        d.strides = vec![16; 5];
        d.box_dims = vec![4; 6];
        d.element_strides = vec![1; 6];
    });
    bad(&|d| {
        d.dtype = TmapDtype::U32;
        d.oob_fill = OobFill::NanRequestZeroFma;
    });
}

// ------------------------------------------------------------------------------------------------
// tma_pipeline.cu

const ROWS_PER_TILE: usize = 8;
const COLS: usize = 32;

struct Pipe {
    dev: Device,
    m: dsv4_emu::ModuleHandle,
}

impl Pipe {
    fn new() -> Pipe {
        let mut dev = Device::new();
        let m = dev.load_module("tma_pipeline.ptx", PTX_PIPE).unwrap();
        Pipe { dev, m }
    }

    /// Runs `tma_pipeline` over a rows x 32 f32 tensor; returns (input, output) or the error.
    fn run(&mut self, ntiles: usize, rows: usize, bug: i32) -> (Vec<f32>, Result<Vec<f32>, dsv4_emu::EmuError>) {
        // Injected bugs are judged under the strict schedule (async results land at their latest
        // legal point); correct runs take whatever schedule DSV4_EMU_SEED asks for.
        if bug != 0 {
            self.dev.set_schedule(dsv4_emu::Schedule::Fixed);
        }
        let mut rng = Rng(7 + rows as u64);
        let input: Vec<f32> = (0..rows * COLS).map(|_| (rng.range(-1000, 1000) as f32) / 8.0).collect();
        let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
        let g = self.dev.alloc(bytes.len()).unwrap();
        self.dev.write(g, &bytes).unwrap();
        let n_out = ntiles * ROWS_PER_TILE * COLS;
        let out = self.dev.alloc(n_out * 4).unwrap();
        let desc = TensorMapDesc::dense(TmapDtype::F32, g, &[COLS as u64, rows as u64], &[COLS as u32, ROWS_PER_TILE as u32], Swizzle::B128);
        let map = encode_tensor_map(&desc).unwrap();
        let cfg = LaunchConfig { grid: [1, 1, 1], block: [96, 1, 1], dynamic_smem: 0 };
        let args = [ArgValue::Bytes(map.to_vec()), ArgValue::U64(out), ArgValue::I32(ntiles as i32), ArgValue::I32(bug)];
        let r = self.dev.launch(self.m, "tma_pipeline", &cfg, &args).map(|_| {
            let mut o = vec![0u8; n_out * 4];
            self.dev.read(out, &mut o).unwrap();
            o.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
        });
        (input, r)
    }
}

fn pipeline_want(input: &[f32], ntiles: usize, rows: usize) -> Vec<f32> {
    (0..ntiles * ROWS_PER_TILE * COLS)
        .map(|i| {
            let (r, c) = (i / COLS, i % COLS);
            let v = if r < rows { input[r * COLS + c] } else { 0.0 };
            v * 2.0 + 1.0
        })
        .collect()
}

#[test]
fn tma_pipeline_ring() {
    let mut p = Pipe::new();
    for (ntiles, rows) in [(1, 8), (4, 32), (7, 53), (11, 88)] {
        let (input, out) = p.run(ntiles, rows, 0);
        let out = out.unwrap_or_else(|e| panic!("{ntiles} tiles: {e}"));
        assert_eq!(out, pipeline_want(&input, ntiles, rows), "{ntiles} tiles over {rows} rows");
    }
}

#[test]
fn tma_pipeline_missing_arrive_deadlocks() {
    let mut p = Pipe::new();
    let (_, out) = p.run(7, 56, 1);
    let e = out.expect_err("a consumer that never arrives on `empty` must deadlock");
    assert_eq!(e.kind, ErrorKind::Deadlock, "{e}");
    assert!(e.message.contains("mbarrier at shared"), "{e}");
    assert!(e.message.contains("arrivals pending"), "{e}");
    assert!(e.message.contains("waiting on the mbarrier"), "{e}");
}

#[test]
fn tma_pipeline_read_before_wait_sees_poison() {
    // The race detector names the early read against the TMA write that lands after it...
    let mut p = Pipe::new();
    let (_, out) = p.run(6, 48, 2);
    let e = out.expect_err("the race detector reports a read of a TMA destination before the mbarrier wait");
    assert!(e.message.contains("shared-memory race") && e.message.contains("cp.async.bulk.tensor") && e.message.contains("ld.shared"), "{e}");
    // ...and without it, the read sees poison.
    let mut p = Pipe::new();
    p.dev.set_race_check(false);
    let (input, out) = p.run(6, 48, 2);
    let out = out.expect("the early read is not an error by itself");
    let want = pipeline_want(&input, 6, 48);
    assert_ne!(out, want, "reading the TMA destination before the mbarrier wait must not see the data");
    let bad = out.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert!(out.iter().any(|v| v.is_nan()), "poison (0xFF bytes) is NaN");
    assert!(bad > 0);
}

fn store_run(fence: i32, blocks: usize, rows: usize) -> (Result<(), dsv4_emu::EmuError>, Vec<f32>, Vec<f32>) {
    let mut dev = Device::new();
    let m = dev.load_module("tma_pipeline.ptx", PTX_PIPE).unwrap();
    let out = dev.alloc(rows * COLS * 4).unwrap();
    dev.memset(out, 0, rows * COLS * 4).unwrap();
    let out2 = dev.alloc(blocks * 256 * 4).unwrap();
    let desc = TensorMapDesc::dense(TmapDtype::F32, out, &[COLS as u64, rows as u64], &[COLS as u32, ROWS_PER_TILE as u32], Swizzle::B128);
    let map = encode_tensor_map(&desc).unwrap();
    let cfg = LaunchConfig { grid: [blocks as u32, 1, 1], block: [64, 1, 1], dynamic_smem: 0 };
    let r = dev.launch(m, "tma_store", &cfg, &[ArgValue::Bytes(map.to_vec()), ArgValue::U64(out2), ArgValue::I32(fence)]).map(|_| ());
    let rd = |dev: &Device, p: u64, n: usize| {
        let mut o = vec![0u8; n * 4];
        dev.read(p, &mut o).unwrap();
        o.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<f32>>()
    };
    let a = rd(&dev, out, rows * COLS);
    let b = rd(&dev, out2, blocks * 256);
    (r, a, b)
}

#[test]
fn tma_and_bulk_store() {
    let (blocks, rows) = (3usize, 19usize);
    let (r, got, got2) = store_run(1, blocks, rows);
    r.unwrap();
    // tile linear index k holds 3k + block; the TMA store reads logical (r, c) at the 128B-swizzled
    // byte offset of r*128 + 4c (the tile is 1024-aligned).
    let mut want = vec![0f32; rows * COLS];
    for b in 0..blocks {
        for r in 0..ROWS_PER_TILE {
            let row = (b * ROWS_PER_TILE + r) as i64 - 2;
            if row < 0 || row >= rows as i64 {
                continue;
            }
            for c in 0..COLS {
                let a = (r * 128 + c * 4) as u32;
                let s = a ^ (((a >> 7) & 7) << 4);
                want[row as usize * COLS + c] = (3 * (s / 4) as usize + b) as f32;
            }
        }
    }
    assert_eq!(got, want);
    let want2: Vec<f32> = (0..blocks * 256).map(|i| (3 * (i % 256) + i / 256) as f32).collect();
    assert_eq!(got2, want2);
}

#[test]
fn missing_fence_proxy_async_is_a_proxy_error() {
    let (r, _, _) = store_run(0, 2, 16);
    let e = r.expect_err("a bulk store of generic-proxy writes without fence.proxy.async must fail");
    assert!(e.message.contains("fence.proxy.async"), "{e}");
    assert!(e.message.contains("line"), "{e}");
}

// ------------------------------------------------------------------------------------------------
// mbarrier forms (hand-written PTX, accepted by ptxas -arch=sm_90a)

const PTX_MBAR: &str = r#".version 8.4
.target sm_90a
.address_size 64
.visible .entry mbar_forms(
    .param .u64 out,
    .param .u64 src
)
{
    .reg .pred %p<10>;
    .reg .b32 %r<30>;
    .reg .b64 %rd<20>;
    .shared .align 8 .b64 bar0;
    .shared .align 8 .b64 bar1;
    .shared .align 128 .b8 buf[256];
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [src];
    mov.u32 %r1, %tid.x;
    setp.ne.u32 %p1, %r1, 0;
    @%p1 bra DONE;
    mov.u32 %r2, bar0;
    mov.u32 %r3, bar1;
    mbarrier.init.shared::cta.b64 [%r2], 3;
    mbarrier.arrive.shared::cta.b64 %rd3, [%r2];
    mbarrier.pending_count.b64 %r4, %rd3;
    mbarrier.arrive.release.cta.shared::cta.b64 %rd4, [%r2], 2;
    mbarrier.test_wait.shared::cta.b64 %p2, [%r2], %rd3;
    mbarrier.test_wait.parity.shared::cta.b64 %p3, [%r2], 0;
    mbarrier.arrive_drop.shared::cta.b64 %rd5, [%r2];
    mbarrier.arrive.shared::cta.b64 %rd6, [%r2], 2;
    mbarrier.try_wait.parity.shared::cta.b64 %p4, [%r2], 1, 1000;
    mbarrier.arrive.shared::cta.b64 %rd7, [%r2];
    mbarrier.pending_count.b64 %r5, %rd7;
    mbarrier.init.shared::cta.b64 [%r3], 1;
    mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%r3], 64;
    mov.u32 %r6, buf;
    cp.async.bulk.prefetch.L2.global [%rd2], 64;
    griddepcontrol.wait;
    cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%r6], [%rd2], 64, [%r3];
    mbarrier.arrive.shared::cta.b64 _, [%r3];
WAIT:
    mbarrier.try_wait.parity.shared::cta.b64 %p5, [%r3], 0;
    @!%p5 bra WAIT;
    ld.shared.u64 %rd8, [buf+56];
    mbarrier.inval.shared::cta.b64 [%r3];
    mbarrier.init.shared::cta.b64 [%r3], 1;
    mbarrier.arrive.expect_tx.shared::cta.b64 _, [%r3], 16;
    mbarrier.complete_tx.shared::cta.b64 [%r3], 16;
    mbarrier.test_wait.parity.shared::cta.b64 %p6, [%r3], 0;
    mbarrier.try_wait.parity.shared::cta.b64 %p7, [%r2], 1;
    selp.u32 %r10, 1, 0, %p2;
    selp.u32 %r11, 1, 0, %p3;
    selp.u32 %r12, 1, 0, %p4;
    selp.u32 %r13, 1, 0, %p6;
    selp.u32 %r14, 1, 0, %p7;
    st.global.u32 [%rd1], %r4;
    st.global.u32 [%rd1+4], %r5;
    st.global.u32 [%rd1+8], %r10;
    st.global.u32 [%rd1+12], %r11;
    st.global.u32 [%rd1+16], %r12;
    st.global.u32 [%rd1+20], %r13;
    st.global.u32 [%rd1+24], %r14;
    st.global.u64 [%rd1+32], %rd8;
DONE:
    ret;
}
"#;

fn mbar_run(ptx: &str) -> Result<(Vec<u32>, u64), dsv4_emu::EmuError> {
    let mut dev = Device::new();
    let m = dev.load_module("mbar.ptx", ptx)?;
    let out = dev.alloc(40).unwrap();
    let src = dev.alloc(64).unwrap();
    let data: Vec<u8> = (0..64u8).map(|i| i * 3 + 1).collect();
    dev.write(src, &data).unwrap();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
    dev.launch(m, "mbar_forms", &cfg, &[ArgValue::U64(out), ArgValue::U64(src)])?;
    let mut o = vec![0u8; 40];
    dev.read(out, &mut o).unwrap();
    let w: Vec<u32> = o[..28].chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    Ok((w, u64::from_le_bytes(o[32..40].try_into().unwrap())))
}

#[test]
fn mbarrier_forms() {
    let (w, last) = mbar_run(PTX_MBAR).unwrap();
    // pending_count after 1 of 3 arrivals; after arrive_drop the next phase expects 2 (1 pending)
    assert_eq!(w[0], 2, "pending_count");
    assert_eq!(w[1], 1, "pending_count after arrive_drop");
    assert_eq!(&w[2..5], &[1, 1, 1], "state-form and parity-form waits on completed phases");
    assert_eq!(w[5], 1, "expect_tx + complete_tx completes the phase");
    assert_eq!(w[6], 1, "bar0 is in phase 2: parity 1 names the completed phase 1");
    let want = u64::from_le_bytes(std::array::from_fn(|i| (56 + i as u8) * 3 + 1));
    assert_eq!(last, want, "cp.async.bulk bytes landed before the wait returned");
}

#[test]
fn mbarrier_misuse_is_reported() {
    // arrive on a barrier that was never initialised
    let ptx = PTX_MBAR.replace("    mbarrier.init.shared::cta.b64 [%r2], 3;\n", "");
    let e = mbar_run(&ptx).expect_err("uninitialised mbarrier");
    assert!(e.message.contains("not initialised") && e.message.contains("line"), "{e}");
    // more arrivals than the phase expects
    let ptx = PTX_MBAR.replace("[%r2], 3;", "[%r2], 2;");
    let e = mbar_run(&ptx).expect_err("too many arrivals");
    assert!(e.message.contains("arrivals pending"), "{e}");
    // a wait that can never succeed: the single warp deadlocks with the barrier in the report
    let ptx = PTX_MBAR.replace("mbarrier.complete_tx.shared::cta.b64 [%r3], 16;", "mbarrier.complete_tx.shared::cta.b64 [%r3], 0;");
    let ptx = ptx.replace("mbarrier.test_wait.parity.shared::cta.b64 %p6, [%r3], 0;", "mbarrier.try_wait.parity.shared::cta.b64 %p6, [%r3], 0;");
    let e = mbar_run(&ptx).expect_err("phase never completes");
    assert_eq!(e.kind, ErrorKind::Deadlock, "{e}");
    assert!(e.message.contains("tx-count 16 bytes"), "{e}");
    // a generic store over a live barrier object
    let ptx = PTX_MBAR.replace("    mbarrier.pending_count.b64 %r4, %rd3;\n", "    mbarrier.pending_count.b64 %r4, %rd3;\n    st.shared.u32 [bar0+4], 0;\n");
    let e = mbar_run(&ptx).expect_err("store over a live mbarrier");
    assert!(e.message.contains("stored over the live mbarrier object at shared 0x0"), "{e}");
}

#[test]
fn bulk_store_source_overwritten_before_wait_is_an_error() {
    let (r, _, _) = store_run(2, 1, 16);
    let e = r.expect_err("writing a bulk store's source before wait_group.read must fail");
    assert!(e.message.contains("overwritten before cp.async.bulk.wait_group.read"), "{e}");
}

#[test]
fn tma_pipeline_write_into_in_flight_destination_is_an_error() {
    let mut p = Pipe::new();
    let (_, out) = p.run(6, 48, 3);
    let e = out.expect_err("a generic write into a TMA destination in flight must fail");
    assert!(e.message.contains("while this bulk load into them was in flight"), "{e}");
}

/// The mbarrier / bulk-copy / TMA forms CUTLASS, `cuda::ptx` and our kernels write (this text
/// passes ptxas -arch=sm_90a) all decode.
const PTX_FORMS: &str = r#".version 8.4
.target sm_90a
.address_size 64
.visible .entry forms(
    .param .align 64 .b8 tmap[128],
    .param .u64 gp
)
{
    .reg .pred %p<4>;
    .reg .b32 %r<20>;
    .reg .b64 %rd<20>;
    .shared .align 1024 .b8 sbuf[4096];
    .shared .align 8 .b64 bar;
    mov.u32 %r1, bar;
    mov.u32 %r2, sbuf;
    mov.b64 %rd1, tmap;
    cvta.param.u64 %rd2, %rd1;
    ld.param.u64 %rd3, [gp];
    mov.u32 %r3, 0;
    mov.u64 %rd4, 0;
    mbarrier.init.shared::cta.b64 [%r1], 1;
    fence.mbarrier_init.release.cluster;
    fence.proxy.async.shared::cta;
    fence.proxy.async;
    fence.proxy.async.global;
    mbarrier.expect_tx.shared::cta.b64 [%r1], 64;
    mbarrier.expect_tx.relaxed.cluster.shared::cluster.b64 [%r1], 64;
    mbarrier.complete_tx.relaxed.cluster.shared::cluster.b64 [%r1], 64;
    mbarrier.complete_tx.shared::cta.b64 [%r1], 64;
    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%r2], [%rd2, {%r3, %r3}], [%r1], %rd4;
    cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r2], [%rd2, {%r3, %r3, %r3}], [%r1];
    cp.async.bulk.tensor.5d.global.shared::cta.tile.bulk_group [%rd2, {%r3, %r3, %r3, %r3, %r3}], [%r2];
    cp.async.bulk.tensor.1d.global.shared::cta.bulk_group.L2::cache_hint [%rd2, {%r3}], [%r2], %rd4;
    cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%r2], [%rd3], 64, [%r1], %rd4;
    cp.async.bulk.global.shared::cta.bulk_group [%rd3], [%r2], 64;
    cp.async.bulk.prefetch.L2.global [%rd3], 64;
    cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%rd2, {%r3, %r3}];
    prefetch.tensormap [%rd2];
    cp.async.bulk.commit_group;
    cp.async.bulk.wait_group 1;
    cp.async.bulk.wait_group.read 0;
    mbarrier.arrive.shared::cta.b64 _, [%r1];
    mbarrier.arrive.release.cta.shared::cta.b64 %rd5, [%r1];
    mbarrier.arrive.shared.b64 %rd6, [%r1], 1;
    mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%r1], 16;
    mbarrier.arrive_drop.shared::cta.b64 _, [%r1];
    mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 %p1, [%r1], 0, 10000000;
    mbarrier.try_wait.shared::cta.b64 %p2, [%r1], %rd5;
    mbarrier.test_wait.parity.shared::cta.b64 %p3, [%r1], 1;
    mbarrier.test_wait.acquire.cta.shared::cta.b64 %p3, [%r1], %rd6;
    mbarrier.pending_count.b64 %r4, %rd5;
    mbarrier.inval.shared::cta.b64 [%r1];
    cvta.shared.u64 %rd7, %rd4;
    mbarrier.init.b64 [%rd7], 1;
    elect.sync %r5|%p1, -1;
    griddepcontrol.wait;
    griddepcontrol.launch_dependents;
    ret;
}
"#;

#[test]
fn async_forms_decode() {
    let mut dev = Device::new();
    dev.load_module("forms.ptx", PTX_FORMS).unwrap_or_else(|e| panic!("{e}"));
    // forms we do not emulate are rejected with their line, never misread
    for (bad, why) in [
        ("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%r2], [%rd2, {%r3, %r3}], [%r1], %rs1;", "multicast"),
        ("cp.reduce.async.bulk.tensor.2d.global.shared::cta.add.tile.bulk_group [%rd2, {%r3, %r3}], [%r2];", ".reduce"),
        ("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r2], [tmap, {%r3, %r3}], [%r1];", "generic address"),
    ] {
        let ptx = PTX_FORMS.replace("    ret;", &format!("    {bad}\n    ret;"));
        let e = dev.load_module("bad.ptx", &ptx).expect_err(bad);
        assert_eq!(e.kind, ErrorKind::Unsupported, "{bad}: {e}");
        assert!(e.message.contains(why), "{bad}: {e}");
    }
}

const PTX_TEST_WAIT: &str = r#".version 8.4
.target sm_90a
.address_size 64
.visible .entry test_wait_forms(
    .param .u64 out
)
{
    .reg .pred %p<4>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<4>;
    .shared .align 8 .b64 bar;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, bar;
    mbarrier.init.shared::cta.b64 [%r1], 32;
    mbarrier.test_wait.parity.shared::cta.b64 %p1, [%r1], 0;
    @%p1 bra SKIP;
    mbarrier.arrive.shared::cta.b64 _, [%r1];
SKIP:
    mbarrier.test_wait.parity.shared::cta.b64 %p2, [%r1], 0;
POLL:
    mbarrier.test_wait.parity.shared::cta.b64 %p3, [%r1], 0;
    @!%p3 bra POLL;
    selp.u32 %r2, 1, 0, %p1;
    selp.u32 %r3, 1, 0, %p2;
    st.global.u32 [%rd1], %r2;
    st.global.u32 [%rd1+4], %r3;
    ret;
}
"#;

#[test]
fn test_wait_returns_false_without_blocking() {
    let run = |ptx: &str| -> Result<Vec<u32>, dsv4_emu::EmuError> {
        let mut dev = Device::new();
        let m = dev.load_module("tw.ptx", ptx)?;
        let out = dev.alloc(8).unwrap();
        let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
        dev.launch(m, "test_wait_forms", &cfg, &[ArgValue::U64(out)])?;
        let mut o = vec![0u8; 8];
        dev.read(out, &mut o).unwrap();
        Ok(o.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect())
    };
    // `if (!test_wait) arrive;` needs test_wait to return false while the phase is open
    assert_eq!(run(PTX_TEST_WAIT).unwrap(), vec![0, 1]);
    // a polling loop on a phase that never completes is a deadlock, not an exhausted budget
    let e = run(&PTX_TEST_WAIT.replace("%p3, [%r1], 0;", "%p3, [%r1], 1;")).expect_err("never completes");
    assert!(e.message.contains("barrier deadlock") && e.message.contains("waiting on the mbarrier"), "{e}");
}
