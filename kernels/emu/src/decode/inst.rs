//! The decoded instruction set: a compact enum specialised by type, rounding and ftz, with
//! registers as dense indices. Immediates, variable addresses and special registers are all
//! registers too (constant registers filled at warp start), so every source is one index.
use crate::num::Rnd;
use crate::tensor::MmaKind;

/// A register index (64-bit slot per lane).
pub type R = u32;
/// A predicate index, or a predicate source with `NEG` set for `!p`.
pub type P = u32;
pub const NEG: u32 = 1 << 31;
pub const NONE: u32 = u32::MAX;

/// Reserved registers.
pub const R_ZERO: R = 0;
pub const R_SINK: R = 1;
/// Reserved predicates.
pub const P_TRUE: P = 0;
pub const P_FALSE: P = 1;
pub const P_CC: P = 2;
pub const P_SINK: P = 3;
pub const N_RESERVED_PREDS: u32 = 4;

/// Generic-address windows (each 4 GiB) for the spaces that are not global.
pub const PARAM_WIN: u64 = 0x7c00_0000_0000;
pub const LOCAL_WIN: u64 = 0x7d00_0000_0000;
pub const SHARED_WIN: u64 = 0x7e00_0000_0000;
pub const WIN_SIZE: u64 = 1 << 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    Global,
    Shared,
    Local,
    /// The kernel parameter bank.
    Param,
    Generic,
}

impl Space {
    pub fn name(self) -> &'static str {
        match self {
            Space::Global => "global",
            Space::Shared => "shared",
            Space::Local => "local",
            Space::Param => "param",
            Space::Generic => "generic",
        }
    }
}

/// An integer type: width in bits and signedness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct It {
    pub bits: u8,
    pub signed: bool,
}

impl It {
    pub const U32: It = It { bits: 32, signed: false };
    pub const S32: It = It { bits: 32, signed: true };
    pub const U64: It = It { bits: 64, signed: false };
    #[inline(always)]
    pub fn mask(self) -> u64 {
        if self.bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }
    /// Normalise a result to the slot representation: sign-extend signed types, zero-extend others.
    #[inline(always)]
    pub fn norm(self, v: u64) -> u64 {
        match (self.bits, self.signed) {
            (64, _) => v,
            (32, false) => v as u32 as u64,
            (32, true) => v as i32 as i64 as u64,
            (16, false) => v as u16 as u64,
            (16, true) => v as i16 as i64 as u64,
            (8, false) => v as u8 as u64,
            (8, true) => v as i8 as i64 as u64,
            _ => v & self.mask(),
        }
    }
    /// The value as a signed 128-bit integer per this type.
    #[inline(always)]
    pub fn val(self, v: u64) -> i128 {
        let n = self.norm(v);
        if self.signed {
            n as i64 as i128
        } else {
            n as i128
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ft {
    F16,
    Bf16,
    F32,
    F64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IOp {
    Add,
    Sub,
    AddSat,
    SubSat,
    MulLo,
    MulHi,
    MulWide,
    Mul24Lo,
    Mul24Hi,
    Div,
    Rem,
    Min,
    Max,
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IUOp {
    Neg,
    Abs,
    Not,
    Cnot,
    Popc,
    Clz,
    Brev,
    Bfind,
    BfindShift,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MadOp {
    Lo,
    Hi,
    HiSat,
    Wide,
    Lo24,
    Hi24,
    Sad,
}

/// Carry-chain arithmetic: `add.cc`, `addc(.cc)`, `sub.cc`, `subc(.cc)`, `mad.lo.cc`, `madc...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CcMode {
    pub sub: bool,
    pub cin: bool,
    pub cout: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    Num,
    Nan,
}

/// What setp/set compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ct {
    Int(It),
    F(Ft),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FOp {
    Add,
    Sub,
    Mul,
    Div,
    DivApprox,
    DivFull,
    Min,
    Max,
    MinNan,
    MaxNan,
    Copysign,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FUOp {
    Abs,
    Neg,
    Sqrt,
    SqrtApprox,
    Rcp,
    RcpApprox,
    RcpApproxFtzF64,
    Rsqrt,
    Ex2,
    Lg2,
    Sin,
    Cos,
    Tanh,
}

/// Half-precision (scalar or packed pair) arithmetic type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ht {
    pub bf: bool,
    pub x2: bool,
}

/// A cvt operand type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CvtT {
    Int(It),
    F(Ft),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CvtSpec {
    pub dt: CvtT,
    pub st: CvtT,
    pub rnd: Rnd,
    /// `.rni/.rzi/.rmi/.rpi`.
    pub rint: bool,
    pub ftz: bool,
    pub sat: bool,
    pub satfinite: bool,
    pub relu: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackKind {
    F16x2,
    Bf16x2,
    E4m3x2,
    E5m2x2,
    /// from f16x2 source (one operand)
    E4m3x2FromF16x2,
    E5m2x2FromF16x2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestOp {
    Finite,
    Infinite,
    Number,
    NotANumber,
    Normal,
    Subnormal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomOp {
    Add,
    AddF32,
    AddF64,
    Min,
    Max,
    Inc,
    Dec,
    And,
    Or,
    Xor,
    Exch,
    Cas,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Sync,
    Arrive,
    RedPopc,
    RedAnd,
    RedOr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteMode {
    All,
    Any,
    Uni,
    Ballot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduxOp {
    Add,
    Min,
    Max,
    And,
    Or,
    Xor,
}

/// The statistics class of an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    Int,
    Float,
    Half,
    Cvt,
    Move,
    LdGlobal,
    StGlobal,
    LdShared,
    StShared,
    LdLocal,
    StLocal,
    LdParam,
    LdGeneric,
    StGeneric,
    Atomic,
    Control,
    Sync,
    Warp,
    Tensor,
    Async,
}

pub const N_CLASSES: usize = 20;

impl Class {
    pub fn name(self) -> &'static str {
        use Class::*;
        match self {
            Int => "int",
            Float => "float",
            Half => "half",
            Cvt => "cvt",
            Move => "move",
            LdGlobal => "ld.global",
            StGlobal => "st.global",
            LdShared => "ld.shared",
            StShared => "st.shared",
            LdLocal => "ld.local",
            StLocal => "st.local",
            LdParam => "ld.param",
            LdGeneric => "ld.generic",
            StGeneric => "st.generic",
            Atomic => "atomic",
            Control => "control",
            Sync => "sync",
            Warp => "warp",
            Tensor => "tensor",
            Async => "async",
        }
    }
    pub const ALL: [Class; N_CLASSES] = [
        Class::Int,
        Class::Float,
        Class::Half,
        Class::Cvt,
        Class::Move,
        Class::LdGlobal,
        Class::StGlobal,
        Class::LdShared,
        Class::StShared,
        Class::LdLocal,
        Class::StLocal,
        Class::LdParam,
        Class::LdGeneric,
        Class::StGeneric,
        Class::Atomic,
        Class::Control,
        Class::Sync,
        Class::Warp,
        Class::Tensor,
        Class::Async,
    ];
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Nop,
    /// Slot copy (values are already normalised).
    Mov { d: R, a: R },
    /// `mov` with a narrowing/normalising type (e.g. `mov.u16` of a wider constant).
    MovT { t: It, d: R, a: R },
    PMov { d: P, a: P },
    /// d = src0 | src1 << bits | ...
    Pack { bits: u8, n: u8, d: R, s: [R; 4] },
    Unpack { bits: u8, n: u8, a: R, d: [R; 4] },
    IBin { op: IOp, t: It, d: R, a: R, b: R },
    IUn { op: IUOp, t: It, d: R, a: R },
    IMad { op: MadOp, t: It, d: R, a: R, b: R, c: R },
    Cc { mode: CcMode, mad: bool, t: It, d: R, a: R, b: R, c: R },
    Bfe { t: It, d: R, a: R, b: R, c: R },
    Bfi { t: It, d: R, a: R, b: R, c: R, e: R },
    Prmt { mode: u8, d: R, a: R, b: R, c: R },
    Lop3 { lut: u8, d: R, a: R, b: R, c: R },
    Shf { left: bool, clamp: bool, d: R, a: R, b: R, c: R },
    Fns { d: R, a: R, b: R, c: R },
    Dp4a { ua: bool, ub: bool, d: R, a: R, b: R, c: R },
    PLogic { op: BoolOp, d: P, a: P, b: P },
    PNot { d: P, a: P },
    Setp { cmp: Cmp, t: Ct, comb: Option<BoolOp>, d: P, d2: P, a: R, b: R, c: P },
    Set { cmp: Cmp, t: Ct, dt: CvtT, comb: Option<BoolOp>, d: R, a: R, b: R, c: P },
    Selp { d: R, a: R, b: R, p: P },
    Slct { f32c: bool, d: R, a: R, b: R, c: R },
    FBin { op: FOp, t: Ft, rnd: Rnd, ftz: bool, sat: bool, d: R, a: R, b: R },
    FFma { t: Ft, rnd: Rnd, ftz: bool, sat: bool, d: R, a: R, b: R, c: R },
    FUn { op: FUOp, t: Ft, rnd: Rnd, ftz: bool, sat: bool, d: R, a: R },
    HBin { op: FOp, t: Ht, ftz: bool, sat: bool, d: R, a: R, b: R },
    HFma { t: Ht, ftz: bool, sat: bool, relu: bool, d: R, a: R, b: R, c: R },
    HUn { neg: bool, t: Ht, d: R, a: R },
    Cvt { spec: CvtSpec, d: R, a: R },
    CvtPack { kind: PackKind, relu: bool, d: R, a: R, b: R },
    CvtFp8Unpack { e5m2: bool, d: R, a: R },
    Cvta { to: bool, space: Space, d: R, a: R },
    Testp { op: TestOp, t: Ft, d: P, a: R },
    /// `isspacep.space p, a`: whether generic address `a` lies in `space`'s window.
    Isspacep { space: Space, d: P, a: R },
    Ld { space: Space, size: u8, signed: bool, n: u8, d: [R; 4], base: R, off: i64 },
    St { space: Space, size: u8, n: u8, s: [R; 4], base: R, off: i64 },
    Atom { space: Space, op: AtomOp, t: It, d: R, base: R, off: i64, b: R, c: R },
    Bra { target: u32 },
    Exit,
    Trap,
    Nanosleep,
    Bar { kind: BarKind, id: R, count: R, d: u32, p: P },
    WarpSync { mask: R },
    Shfl { mode: ShflMode, d: R, dp: P, a: R, b: R, c: R, mask: R },
    Vote { mode: VoteMode, d: u32, a: P, mask: R },
    Match { all: bool, b64: bool, d: R, dp: P, a: R, mask: R },
    Redux { op: ReduxOp, signed: bool, d: R, a: R, mask: R },
    Activemask { d: R },
    Elect { d: R, p: P, mask: R },
    /// `regs` indexes `Kernel::lists`: d, a, b, c register lists back to back.
    Mma { kind: u32, regs: u32 },
    Ldmatrix { num: u8, trans: bool, d: [R; 4], base: R, off: i64 },
    Stmatrix { num: u8, trans: bool, s: [R; 4], base: R, off: i64 },
    CpAsync { size: u8, src_size: R, dbase: R, doff: i64, sbase: R, soff: i64 },
    CpCommit,
    CpWait { n: u32 },
    /// mbarrier, bulk copies and TMA, `fence.proxy.async` (see `decode::asyncops`).
    Async(Box<super::asyncops::AsyncOp>),
    /// `wgmma.*` and `setmaxnreg` (see `exec::wgmma`).
    Wgmma(Box<crate::exec::wgmma::WgOp>),
}

impl Op {
    pub fn class(&self) -> Class {
        use Op::*;
        match self {
            Nop | Mov { .. } | MovT { .. } | PMov { .. } | Pack { .. } | Unpack { .. } | Selp { .. } => Class::Move,
            IBin { .. } | IUn { .. } | IMad { .. } | Cc { .. } | Bfe { .. } | Bfi { .. } | Prmt { .. } | Lop3 { .. }
            | Shf { .. } | Fns { .. } | Dp4a { .. } | PLogic { .. } | PNot { .. } | Slct { .. } => Class::Int,
            Setp { t, .. } | Set { t, .. } => match t {
                Ct::Int(_) => Class::Int,
                Ct::F(_) => Class::Float,
            },
            FBin { .. } | FFma { .. } | FUn { .. } | Testp { .. } => Class::Float,
            Isspacep { .. } => Class::Int,
            HBin { .. } | HFma { .. } | HUn { .. } => Class::Half,
            Cvt { .. } | CvtPack { .. } | CvtFp8Unpack { .. } | Cvta { .. } => Class::Cvt,
            Ld { space, .. } => match space {
                Space::Global => Class::LdGlobal,
                Space::Shared => Class::LdShared,
                Space::Local => Class::LdLocal,
                Space::Param => Class::LdParam,
                Space::Generic => Class::LdGeneric,
            },
            St { space, .. } => match space {
                Space::Global => Class::StGlobal,
                Space::Shared => Class::StShared,
                Space::Local | Space::Param => Class::StLocal,
                Space::Generic => Class::StGeneric,
            },
            Atom { .. } => Class::Atomic,
            Bra { .. } | Exit | Trap | Nanosleep => Class::Control,
            Bar { .. } | WarpSync { .. } => Class::Sync,
            Shfl { .. } | Vote { .. } | Match { .. } | Redux { .. } | Activemask { .. } | Elect { .. } => Class::Warp,
            Mma { .. } | Ldmatrix { .. } | Stmatrix { .. } => Class::Tensor,
            CpAsync { .. } | CpCommit | CpWait { .. } => Class::Async,
            Async(..) => Class::Async,
            Wgmma(..) => Class::Tensor,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Inst {
    pub op: Op,
    /// `NONE`, or a predicate index with `NEG` for `@!p`.
    pub guard: P,
    /// Index into `Kernel::src` (line and text).
    pub src: u32,
}

/// A special register, filled into its register at warp start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SReg {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    LaneId,
    LaneMaskEq,
    LaneMaskLt,
    LaneMaskLe,
    LaneMaskGt,
    LaneMaskGe,
    DynSmem,
    TotalSmem,
    WarpSize,
    /// Offset of dynamic shared memory within the CTA's shared space.
    DynBase,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KParam {
    pub name: String,
    pub offset: u32,
    pub size: u32,
    pub align: u32,
}

/// One decoded kernel, ready to run.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub name: String,
    pub insts: Vec<Inst>,
    /// (line, text) per source instruction.
    pub src: Vec<(u32, String)>,
    pub nregs: u32,
    pub npreds: u32,
    pub consts: Vec<(R, u64)>,
    pub sregs: Vec<(R, SReg)>,
    pub params: Vec<KParam>,
    pub param_size: u32,
    pub static_smem: u32,
    /// Offset of dynamic shared memory (static size rounded up to its alignment).
    pub dyn_smem_offset: u32,
    pub local_size: u32,
    pub maxntid: Option<[u32; 3]>,
    pub reqntid: Option<[u32; 3]>,
    pub lists: Vec<R>,
    pub mma_kinds: Vec<MmaKind>,
    pub line: u32,
}
