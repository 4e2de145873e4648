//! The PTX syntax tree: what the parser produces and the decoder consumes. It stays close to the
//! text (opcode and modifiers as strings) so the parser needs no knowledge of instruction
//! semantics; the decoder (`crate::decode`) gives them meaning and rejects what it cannot run.

/// One `.ptx` file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Module {
    /// `.version 8.4` -> (8, 4).
    pub version: (u32, u32),
    /// `.target sm_90a` -> ["sm_90a"] (a target line may list several, e.g. "sm_90a, texmode_independent").
    pub target: Vec<String>,
    pub address_size: u32,
    /// Module-scope variables (`.global`, `.const`, `.shared`, incl. `.extern .shared`).
    pub vars: Vec<VarDecl>,
    /// `.entry` kernels and `.func` device functions, in file order.
    pub functions: Vec<Function>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub name: String,
    /// `.entry` (a kernel) or `.func`.
    pub is_entry: bool,
    /// `.visible`, `.weak`, `.extern` linkage as written (informational).
    pub linkage: Vec<String>,
    /// `.func (.param .b32 retval) name (...)`: the return parameters.
    pub returns: Vec<Param>,
    pub params: Vec<Param>,
    /// Performance directives: `.maxntid 256, 1, 1` -> ("maxntid", [256, 1, 1]); also `reqntid`,
    /// `minnctapersm`, `maxnreg`, `explicitcluster`, `reqnctapercluster`.
    pub directives: Vec<(String, Vec<u32>)>,
    /// The body: the outermost `{ ... }` block. None for a declaration without a body.
    pub body: Option<Vec<Statement>>,
    /// 1-based line of the `.entry`/`.func` keyword.
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    /// Element type, e.g. U64, B8.
    pub ty: ScalarType,
    /// `.align N` if given.
    pub align: Option<u32>,
    /// `.param .align 64 .b8 tmap[128]` -> Some(128). None for a scalar.
    pub array_len: Option<u32>,
    /// `.ptr .global .align 16` attributes are kept as text (informational).
    pub attrs: Vec<String>,
}

impl Param {
    /// Size in bytes.
    pub fn size(&self) -> u32 {
        self.ty.size() * self.array_len.unwrap_or(1)
    }
    /// Alignment in bytes (explicit or natural).
    pub fn alignment(&self) -> u32 {
        self.align.unwrap_or(self.ty.size())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateSpace {
    Reg,
    Global,
    Shared,
    Local,
    Const,
    Param,
}

/// The fundamental types as written in declarations and instruction modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScalarType {
    Pred,
    B8,
    B16,
    B32,
    B64,
    B128,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    F16x2,
    Bf16,
    Bf16x2,
    F32,
    F64,
}

impl ScalarType {
    pub fn size(self) -> u32 {
        use ScalarType::*;
        match self {
            Pred => 1,
            B8 | U8 | S8 => 1,
            B16 | U16 | S16 | F16 | Bf16 => 2,
            B32 | U32 | S32 | F32 | F16x2 | Bf16x2 => 4,
            B64 | U64 | S64 | F64 => 8,
            B128 => 16,
        }
    }

    /// `"u32"` -> U32 (without the leading dot).
    pub fn from_name(s: &str) -> Option<ScalarType> {
        use ScalarType::*;
        Some(match s {
            "pred" => Pred,
            "b8" => B8,
            "b16" => B16,
            "b32" => B32,
            "b64" => B64,
            "b128" => B128,
            "u8" => U8,
            "u16" => U16,
            "u32" => U32,
            "u64" => U64,
            "s8" => S8,
            "s16" => S16,
            "s32" => S32,
            "s64" => S64,
            "f16" => F16,
            "f16x2" => F16x2,
            "bf16" => Bf16,
            "bf16x2" => Bf16x2,
            "f32" => F32,
            "f64" => F64,
            _ => return None,
        })
    }
}

/// A variable declaration (`.shared`, `.local`, `.global`, `.const`), at module or function scope.
#[derive(Clone, Debug, PartialEq)]
pub struct VarDecl {
    pub space: StateSpace,
    pub name: String,
    pub ty: ScalarType,
    pub align: Option<u32>,
    /// Array dimensions; `[]` (unsized, e.g. `.extern .shared .b8 smem[]`) is `None`.
    pub dims: Vec<Option<u32>>,
    /// `.extern` (dynamic shared memory when space is Shared).
    pub is_extern: bool,
    /// `= {1, 2, 3}` or `= 5`: the initialiser's elements, each an integer or float bit pattern
    /// of `ty`.
    pub init: Option<Vec<Operand>>,
    pub line: u32,
}

impl VarDecl {
    /// Size in bytes (0 for an unsized extern array).
    pub fn size(&self) -> u64 {
        let n: u64 = self.dims.iter().map(|d| d.unwrap_or(0) as u64).product();
        n * self.ty.size() as u64
    }
}

/// A register declaration: `.reg .b32 %r<42>;` declares %r0..%r41 ; `.reg .pred p, q;` declares two.
#[derive(Clone, Debug, PartialEq)]
pub struct RegDecl {
    pub ty: ScalarType,
    /// (name, Some(n)) for a parameterised range `%r<n>`; (name, None) for a single register.
    pub names: Vec<(String, Option<u32>)>,
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    /// A nested `{ ... }` scope (inline asm produces these; names declared inside are local to it,
    /// and its labels may repeat labels of other scopes).
    Block(Vec<Statement>),
    Reg(RegDecl),
    Var(VarDecl),
    Label(String, u32),
    Inst(Instruction),
    /// `.pragma "nounroll";` and other directives the decoder may ignore.
    Pragma(String, u32),
}

/// One instruction: `@!%p1 ld.global.nc.v4.u32 {%r1,%r2,%r3,%r4}, [%rd4+16];`
#[derive(Clone, Debug, PartialEq)]
pub struct Instruction {
    /// 1-based line in the file (for every error message).
    pub line: u32,
    /// The instruction's text as written (trimmed), for error messages.
    pub text: String,
    /// `@p` -> Some((false, "p")); `@!p` -> Some((true, "p")).
    pub guard: Option<(bool, String)>,
    /// "ld".
    pub opcode: String,
    /// The dot-separated parts after the opcode, in order, without dots:
    /// ["global", "nc", "v4", "u32"]. Parts containing "::" stay whole: "shared::cta".
    pub mods: Vec<String>,
    pub operands: Vec<Operand>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// `%r1`, `%tid.x`, `%SPL`, or a plain identifier that the decoder resolves to a register,
    /// variable or label by scope.
    Name(String),
    /// `!%p1` (negated predicate as a source operand, e.g. in `bar.red`, `selp` forms, `setp`'s c).
    Not(String),
    /// Integer literal (decimal, hex `0x`, octal, binary); `U` suffix dropped. Negative allowed.
    Int(i64),
    /// `0fXXXXXXXX`, or a decimal float literal rounded to f32, as f32 bits.
    F32(u32),
    /// `0dXXXXXXXXXXXXXXXX` or a decimal float literal as f64 bits.
    F64(u64),
    /// `{%r1, %r2}` (vector operand or register pack). Elements may be `_` (Sink).
    Vector(Vec<Operand>),
    /// `[base+offset]`, `[base]`, `[offset]`, `[name+offset]`. `base` is a register or variable
    /// or parameter name; None for an absolute address.
    Address { base: Option<String>, offset: i64 },
    /// `p|q` (setp's two predicate destinations).
    PredPair(String, String),
    /// `_` (a sink destination).
    Sink,
    /// `name+offset` outside brackets (e.g. `mov.u64 %rd1, smem+16;`, `generic(name)` reduced to name).
    SymbolOffset(String, i64),
}
