//! `mma.sync.aligned.m16n8kK.row.col`: fragment layouts and the warp-wide multiply-accumulate.

use crate::num::{self, Rnd};

/// An element type of an mma operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F16,
    Bf16,
    E4m3,
    E5m2,
    F32,
    S8,
    U8,
    Tf32,
    /// The integer accumulator (C/D of `.s8`/`.u8` mma).
    S32,
}

impl Elem {
    /// Width of one element in bits.
    pub fn bits(self) -> u32 {
        match self {
            Elem::F16 | Elem::Bf16 => 16,
            Elem::E4m3 | Elem::E5m2 | Elem::S8 | Elem::U8 => 8,
            Elem::F32 | Elem::Tf32 | Elem::S32 => 32,
        }
    }

    fn parse(s: &str) -> Option<Elem> {
        Some(match s {
            "f16" => Elem::F16,
            "bf16" => Elem::Bf16,
            "e4m3" => Elem::E4m3,
            "e5m2" => Elem::E5m2,
            "f32" => Elem::F32,
            "s8" => Elem::S8,
            "u8" => Elem::U8,
            "tf32" => Elem::Tf32,
            "s32" => Elem::S32,
            _ => return None,
        })
    }

    /// Elements per 32-bit register.
    fn per_reg(self) -> u32 {
        32 / self.bits()
    }

    /// The value of one element (`raw` holds it in its low bits).
    fn value(self, raw: u32) -> f64 {
        match self {
            Elem::F16 => num::f16_to_f64(raw as u16),
            Elem::Bf16 => num::bf16_to_f64(raw as u16),
            Elem::E4m3 => num::e4m3_to_f32(raw as u8) as f64,
            Elem::E5m2 => num::e5m2_to_f32(raw as u8) as f64,
            Elem::F32 => f32::from_bits(raw) as f64,
            Elem::Tf32 => f32::from_bits(raw & !0x1FFF) as f64,
            Elem::S8 => raw as u8 as i8 as f64,
            Elem::U8 => (raw as u8) as f64,
            Elem::S32 => raw as i32 as f64,
        }
    }

    fn is_int(self) -> bool {
        matches!(self, Elem::S8 | Elem::U8 | Elem::S32)
    }
}

/// The shape and types of one mma form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmaKind {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub a: Elem,
    pub b: Elem,
    pub c: Elem,
    pub d: Elem,
}

impl MmaKind {
    /// Parses the modifiers after `mma`, e.g.
    /// `["sync","aligned","m16n8k16","row","col","f32","bf16","bf16","f32"]` (types in PTX order:
    /// d, a, b, c). Err names what is unsupported.
    pub fn from_mods(mods: &[String]) -> Result<MmaKind, String> {
        let mut shape = None;
        let mut types = Vec::new();
        let (mut row, mut col, mut sync, mut aligned) = (false, false, false, false);
        for m in mods {
            match m.as_str() {
                "sync" => sync = true,
                "aligned" => aligned = true,
                "row" if !row && !col => row = true,
                "col" if row && !col => col = true,
                "satfinite" => return Err("mma .satfinite is not supported by the emulator".into()),
                s if s.starts_with('m') && s.contains('n') && s.contains('k') => {
                    let parse = || -> Option<(u32, u32, u32)> {
                        let rest = s.strip_prefix('m')?;
                        let (m, rest) = rest.split_once('n')?;
                        let (n, k) = rest.split_once('k')?;
                        Some((m.parse().ok()?, n.parse().ok()?, k.parse().ok()?))
                    };
                    shape = Some(parse().ok_or_else(|| format!("mma: bad shape .{s}"))?);
                }
                s => match Elem::parse(s) {
                    Some(e) => types.push(e),
                    None => return Err(format!("mma: unsupported modifier .{s}")),
                },
            }
        }
        if !sync || !aligned {
            return Err("mma: only mma.sync.aligned is supported".into());
        }
        if !(row && col) {
            return Err("mma: only the .row.col layout is supported".into());
        }
        let (m, n, k) = shape.ok_or("mma: missing shape")?;
        if types.len() != 4 {
            return Err(format!("mma: expected 4 types (d, a, b, c), got {}", types.len()));
        }
        let (d, a, b, c) = (types[0], types[1], types[2], types[3]);
        let kind = MmaKind { m, n, k, a, b, c, d };
        let name = || format!("mma.m{m}n{n}k{k}.{d:?}.{a:?}.{b:?}.{c:?}").to_lowercase();
        if (m, n) != (16, 8) {
            return Err(format!("{}: unsupported shape", name()));
        }
        use Elem::*;
        let fp8 = |e: Elem| matches!(e, E4m3 | E5m2);
        let i8_ = |e: Elem| matches!(e, S8 | U8);
        let ok = match (a, b) {
            (F16, F16) => matches!(k, 8 | 16) && matches!(c, F16 | F32) && matches!(d, F16 | F32),
            (Bf16, Bf16) => matches!(k, 8 | 16) && c == F32 && d == F32,
            (Tf32, Tf32) => matches!(k, 4 | 8) && c == F32 && d == F32,
            (x, y) if fp8(x) && fp8(y) => matches!(k, 16 | 32) && ((c == F32 && d == F32) || (c == F16 && d == F16)),
            (x, y) if i8_(x) && i8_(y) => matches!(k, 16 | 32) && c == S32 && d == S32,
            _ => false,
        };
        if !ok {
            return Err(format!("{}: unsupported type combination", name()));
        }
        Ok(kind)
    }

    /// 32-bit registers per lane for A, B, C, D (e.g. m16n8k16 bf16 f32: 4, 2, 4, 4).
    pub fn regs(&self) -> (usize, usize, usize, usize) {
        let r = |elems: u32, e: Elem| (elems * e.bits() / 32 / 32) as usize;
        (r(self.m * self.k, self.a), r(self.k * self.n, self.b), r(self.m * self.n, self.c), r(self.m * self.n, self.d))
    }

    /// 2 * m * n * k.
    pub fn flops(&self) -> u64 {
        2 * self.m as u64 * self.n as u64 * self.k as u64
    }
}

/// (row, col) of A held by `lane` as its element `i` (element `i` lives in register
/// `i / per_reg`, bits `(i % per_reg) * width ..`). m16n8kK, `.row` A.
pub fn a_coord(kind: &MmaKind, lane: u32, i: u32) -> (u32, u32) {
    let (g, t) = (lane >> 2, lane & 3);
    let e = kind.a.per_reg();
    let row = g + 8 * ((i / e) % 2);
    let col = t * e + i % e + (kind.k / 2) * (i / (2 * e));
    (row, col)
}

/// (k, n) of B held by `lane` as its element `i`. m16n8kK, `.col` B.
pub fn b_coord(kind: &MmaKind, lane: u32, i: u32) -> (u32, u32) {
    let (g, t) = (lane >> 2, lane & 3);
    let e = kind.b.per_reg();
    (t * e + i % e + (kind.k / 2) * (i / e), g)
}

/// (row, col) of C/D held by `lane` as its element `i` (4 elements per lane for m16n8).
pub fn c_coord(lane: u32, i: u32) -> (u32, u32) {
    let (g, t) = (lane >> 2, lane & 3);
    (g + 8 * (i / 2), t * 2 + i % 2)
}

fn get(regs: &[u32], lane: u32, nregs: usize, e: Elem, i: u32) -> u32 {
    let per = e.per_reg();
    let w = e.bits();
    let r = regs[lane as usize * nregs + (i / per) as usize];
    if w == 32 {
        r
    } else {
        (r >> ((i % per) * w)) & ((1u32 << w) - 1)
    }
}

/// One warp-wide mma: `a[lane * na + i]` etc. (lane-major), `d` written the same way.
pub fn mma_sync(kind: &MmaKind, a: &[u32], b: &[u32], c: &[u32], d: &mut [u32]) {
    let (na, nb, nc, nd) = kind.regs();
    assert!(
        a.len() >= 32 * na && b.len() >= 32 * nb && c.len() >= 32 * nc && d.len() >= 32 * nd,
        "mma_sync: short register arrays"
    );
    let (m, n, k) = (kind.m as usize, kind.n as usize, kind.k as usize);
    let mut am = vec![0f64; m * k];
    let mut bm = vec![0f64; k * n];
    let mut cm = vec![0f64; m * n];
    let per_lane = |total: usize| (total / 32) as u32;
    for lane in 0..32u32 {
        for i in 0..per_lane(m * k) {
            let (r, cc) = a_coord(kind, lane, i);
            am[r as usize * k + cc as usize] = kind.a.value(get(a, lane, na, kind.a, i));
        }
        for i in 0..per_lane(k * n) {
            let (kk, nn) = b_coord(kind, lane, i);
            bm[kk as usize * n + nn as usize] = kind.b.value(get(b, lane, nb, kind.b, i));
        }
        for i in 0..4 {
            let (r, cc) = c_coord(lane, i);
            cm[r as usize * n + cc as usize] = kind.c.value(get(c, lane, nc, kind.c, i));
        }
    }
    let int = kind.a.is_int();
    let mut dm = vec![0u32; m * n];
    for r in 0..m {
        for cc in 0..n {
            if int {
                let mut s = cm[r * n + cc] as i64;
                for kk in 0..k {
                    s += am[r * k + kk] as i64 * bm[kk * n + cc] as i64;
                }
                dm[r * n + cc] = s as i32 as u32; // wraps
            } else {
                let mut s = cm[r * n + cc];
                for kk in 0..k {
                    s += am[r * k + kk] * bm[kk * n + cc];
                }
                dm[r * n + cc] = match kind.d {
                    Elem::F16 => num::f64_to_f16(s, Rnd::Rn) as u32,
                    _ => num::f64_to_f32(s, Rnd::Rn).to_bits(),
                };
            }
        }
    }
    for v in d[..32 * nd].iter_mut() {
        *v = 0;
    }
    let w = kind.d.bits();
    let per = kind.d.per_reg();
    for lane in 0..32u32 {
        for i in 0..4u32 {
            let (r, cc) = c_coord(lane, i);
            let val = dm[r as usize * n + cc as usize];
            let slot = &mut d[lane as usize * nd + (i / per) as usize];
            if w == 32 {
                *slot = val;
            } else {
                *slot |= (val & ((1 << w) - 1)) << ((i % per) * w);
            }
        }
    }
}
