//! AMX BF16 tiles (Intel Sapphire Rapids and later): the multiply of the batched FP4 / FP8 / BF16
//! GEMM (`panel`) when a call has enough tokens. The weights are decoded as for the AVX-512
//! panel, 32 rows x one chunk of inputs at a time, with each block's scale folded into the bf16
//! values (exact for e8m0 codes in the ranges `panel` checks), laid out `[input pair][32 rows]`:
//! that is the VNNI layout a B tile reads (16 pairs x 16 rows of a 16-row half, 128 bytes apart).
//! An A tile reads 16 tokens x 32 inputs of x straight from the caller's bf16 rows. One
//! `tdpbf16ps` is 16 x 16 x 32 multiply-adds; four per step (32 tokens x 32 rows) against eight
//! tile loads per step's two A and two B tiles. FP8 and BF16 at 6-16 tokens swap the roles
//! (`amx_weights_a`): the weight rows (FP8 decoded, BF16 as stored) are the A tiles and x the B
//! tile.
//!
//! The products are exact (bf16 x bf16 in f32); sums are in f32 in the tile's order, and
//! `tdpbf16ps` flushes subnormal products and sums to zero (as `vdpbf16ps`, within the
//! kernels' tolerance).
//!
//! Every thread loads the tile configuration at the start of its share ([`Tiles`]) and releases
//! it at the end; the process asks Linux once for the tile state (`arch_prctl`).

use std::arch::asm;
use std::sync::OnceLock;

/// Whether this CPU has AMX-TILE and AMX-BF16 and the OS lets this process use the tile state.
/// `DSV4_AMX=0` turns the path off.
pub(crate) fn enabled() -> bool {
    static E: OnceLock<bool> = OnceLock::new();
    *E.get_or_init(|| {
        if std::env::var("DSV4_AMX").as_deref() == Ok("0") {
            return false;
        }
        // CPUID.(7,0):EDX bit 22 AMX-BF16, bit 24 AMX-TILE
        let l7 = std::arch::x86_64::__cpuid_count(7, 0);
        let has = (l7.edx >> 22) & 1 == 1 && (l7.edx >> 24) & 1 == 1;
        has && request_tile_state()
    })
}

/// Linux hands out the (8 KiB) tile data state only to processes that ask.
#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain syscall with integer arguments
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// Palette 1, tmm0-7 each 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileCfg([u8; 64]);

const CFG: TileCfg = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64;
        c[48 + t] = 16;
        t += 1;
    }
    TileCfg(c)
};

/// The tile configuration, loaded on this thread while the value lives.
pub(crate) struct Tiles(());

impl Tiles {
    /// # Safety
    /// [`enabled`] must be true.
    pub(crate) unsafe fn load() -> Tiles {
        // SAFETY: AMX present and permitted (the caller); CFG is a valid palette-1 config
        unsafe { asm!("ldtilecfg [{}]", in(reg) CFG.0.as_ptr(), options(nostack, readonly)) };
        Tiles(())
    }

    /// Zeroes the accumulators (tmm0-3).
    pub(crate) fn zero(&self) {
        // SAFETY: the config is loaded (self)
        unsafe { asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem)) };
    }

    /// Accumulator `j * 2 + h` (16 x 16 f32, row = token, column = weight row) `+= Σ_parts Σ_s
    /// x-tile(part, j, s) · B(h, s)` for `J` blocks of 16 tokens (`J` 1 or 2) and both 16-row
    /// halves, over `k` inputs (a multiple of 32). Each of `xs` (the bf16 parts whose sum is x, see
    /// [`split_bf16`]): token rows of bf16, `ldx` elements apart (16 J rows readable), at the
    /// first input; `panel`: `k / 2` pairs x 32 dwords (row-half `h` at dword `16 h`).
    ///
    /// # Safety
    /// The pointers must cover what is described; `self` proves the config is loaded.
    pub(crate) unsafe fn steps<const J: usize>(&self, xs: &[*const u16], ldx: usize, panel: *const u32, k: usize) {
        let sx = ldx * 2;
        let sp: usize = 32 * 4; // bytes between the pairs of the panel
        unsafe {
            for s in 0..k / 32 {
                let pb = panel.add(16 * 32 * s);
                asm!(
                    "tileloadd tmm6, [{p0} + {sp}*1]",
                    "tileloadd tmm7, [{p1} + {sp}*1]",
                    p0 = in(reg) pb, p1 = in(reg) pb.add(16), sp = in(reg) sp,
                    options(nostack, readonly),
                );
                for &x in xs {
                    let xa = x.add(32 * s);
                    if J == 2 {
                        asm!(
                            "tileloadd tmm4, [{x0} + {sx}*1]",
                            "tileloadd tmm5, [{x1} + {sx}*1]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            "tdpbf16ps tmm2, tmm5, tmm6",
                            "tdpbf16ps tmm3, tmm5, tmm7",
                            x0 = in(reg) xa, x1 = in(reg) xa.add(16 * ldx), sx = in(reg) sx,
                            options(nostack, readonly),
                        );
                    } else {
                        asm!(
                            "tileloadd tmm4, [{x0} + {sx}*1]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            x0 = in(reg) xa, sx = in(reg) sx,
                            options(nostack, readonly),
                        );
                    }
                }
            }
        }
    }

    /// Loads accumulator `i` from `c[i]` (rows of 16 f32).
    pub(crate) fn load_acc(&self, c: &[[f32; 256]; 4]) {
        // SAFETY: the config is loaded (self); c holds four 16 x 64-byte tiles
        unsafe {
            let cp = c.as_ptr() as *const f32;
            asm!(
                "tileloadd tmm0, [{c0} + {s}*1]",
                "tileloadd tmm1, [{c1} + {s}*1]",
                "tileloadd tmm2, [{c2} + {s}*1]",
                "tileloadd tmm3, [{c3} + {s}*1]",
                c0 = in(reg) cp, c1 = in(reg) cp.add(256), c2 = in(reg) cp.add(512), c3 = in(reg) cp.add(768),
                s = in(reg) 64usize,
                options(nostack, readonly),
            );
        }
    }

    /// Stores accumulator `i` into `c[i]` (rows of 16 f32).
    pub(crate) fn store(&self, c: &mut [[f32; 256]; 4]) {
        // SAFETY: the config is loaded (self); c holds four 16 x 64-byte tiles
        unsafe {
            let cp = c.as_mut_ptr() as *mut f32;
            asm!(
                "tilestored [{c0} + {s}*1], tmm0",
                "tilestored [{c1} + {s}*1], tmm1",
                "tilestored [{c2} + {s}*1], tmm2",
                "tilestored [{c3} + {s}*1], tmm3",
                c0 = in(reg) cp, c1 = in(reg) cp.add(256), c2 = in(reg) cp.add(512), c3 = in(reg) cp.add(768),
                s = in(reg) 64usize,
                options(nostack),
            );
        }
    }
}

/// x (finite f32) as three bf16 arrays whose sum is x exactly: the top 8 significant bits, the
/// next 8, the last 8 (each part the truncation of what the previous ones leave, so every
/// difference is exact). The tiles then multiply any f32 activation (unquantised: the attention
/// output into `wo_a`, the head's and the compressors' inputs) at three times the work. A part below 2^-126 is flushed by the tiles:
/// an error under 2^-16 of values under 2^-110, far inside the kernels' tolerance. None if x
/// has an infinity or NaN (the AVX-512 kernels take those).
pub(crate) fn split_bf16(x: &[f32]) -> Option<[Vec<u16>; 3]> {
    let mut parts = [vec![0u16; x.len()], vec![0u16; x.len()], vec![0u16; x.len()]];
    let mut finite = true;
    for (i, &v) in x.iter().enumerate() {
        finite &= v.is_finite();
        let h1 = v.to_bits() & 0xFFFF_0000;
        let r1 = v - f32::from_bits(h1);
        let h2 = r1.to_bits() & 0xFFFF_0000;
        let r2 = r1 - f32::from_bits(h2);
        parts[0][i] = (h1 >> 16) as u16;
        parts[1][i] = (h2 >> 16) as u16;
        parts[2][i] = (r2.to_bits() >> 16) as u16;
    }
    finite.then_some(parts)
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the config was loaded by `load`
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

#[cfg(test)]
mod tests {
    use super::split_bf16;

    #[test]
    fn the_three_parts_sum_to_x_exactly() {
        let xs = [1.0f32, -3.3333333, 1.0e-30, 6.5e37, f32::MAX, f32::MIN_POSITIVE, 0.0, -0.0, 1.0 + f32::EPSILON, 123456.79];
        let [a, b, c] = split_bf16(&xs).expect("finite");
        for (i, &x) in xs.iter().enumerate() {
            let f = |h: u16| f32::from_bits(u32::from(h) << 16);
            // the parts are exact and disjoint: any order of sums gives x
            assert_eq!(f(a[i]) + (f(b[i]) + f(c[i])), x, "x = {x:e}");
            assert_eq!(f(c[i]) as f64 + f(b[i]) as f64 + f(a[i]) as f64, x as f64, "x = {x:e}");
        }
        assert!(split_bf16(&[1.0, f32::INFINITY]).is_none());
        assert!(split_bf16(&[f32::NAN]).is_none());
    }
}
