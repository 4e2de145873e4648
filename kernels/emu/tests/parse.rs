//! The PTX parser: nvcc 13 output (fixtures under `parse_fixtures/`), hand-written forms, error
//! reporting, and fuzzing (no input may panic).
use dsv4_emu::ptx::*;
use proptest::prelude::*;

const BASICS: &str = include_str!("parse_fixtures/basics.ptx");
const TENSOR: &str = include_str!("parse_fixtures/tensor.ptx");
const TMA: &str = include_str!("parse_fixtures/tma.ptx");
const DBG: &str = include_str!("parse_fixtures/dbg.ptx");
const FIXTURES: [&str; 4] = [BASICS, TENSOR, TMA, DBG];

// ---- helpers ------------------------------------------------------------------------------

fn func<'m>(m: &'m Module, name: &str) -> &'m Function {
    m.functions.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no function {name}"))
}

fn body(f: &Function) -> &[Statement] {
    f.body.as_deref().expect("function has a body")
}

/// Every instruction, depth first, with its block depth.
fn insts(stmts: &[Statement]) -> Vec<&Instruction> {
    fn go<'s>(s: &'s [Statement], out: &mut Vec<&'s Instruction>) {
        for st in s {
            match st {
                Statement::Inst(i) => out.push(i),
                Statement::Block(b) => go(b, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    go(stmts, &mut out);
    out
}

fn inst_at(stmts: &[Statement], line: u32) -> &Instruction {
    insts(stmts).into_iter().find(|i| i.line == line).unwrap_or_else(|| panic!("no instruction on line {line}"))
}

fn blocks(stmts: &[Statement]) -> Vec<&Vec<Statement>> {
    stmts.iter().filter_map(|s| if let Statement::Block(b) = s { Some(b) } else { None }).collect()
}

fn labels(stmts: &[Statement]) -> Vec<&str> {
    stmts.iter().filter_map(|s| if let Statement::Label(l, _) = s { Some(l.as_str()) } else { None }).collect()
}

fn name(s: &str) -> Operand {
    Operand::Name(s.into())
}

fn vec_of(names: &[&str]) -> Operand {
    Operand::Vector(names.iter().map(|n| if *n == "_" { Operand::Sink } else { name(n) }).collect())
}

fn addr(base: &str, offset: i64) -> Operand {
    Operand::Address { base: Some(base.into()), offset }
}

fn mods(i: &Instruction) -> Vec<&str> {
    i.mods.iter().map(|s| s.as_str()).collect()
}

/// Parses a function body wrapped in a minimal module.
fn parse_body(body: &str) -> Vec<Statement> {
    let src = format!(".version 8.4\n.target sm_90a\n.address_size 64\n.visible .entry k()\n{{\n{body}\n}}\n");
    let m = parse(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    m.functions[0].body.clone().unwrap()
}

fn one_inst(text: &str) -> Instruction {
    let b = parse_body(text);
    let v = insts(&b);
    assert_eq!(v.len(), 1, "{text}");
    v[0].clone()
}

// ---- nvcc fixtures -------------------------------------------------------------------------

#[test]
fn fixture_basics() {
    let m = parse(BASICS).unwrap();
    assert_eq!(m.version, (9, 0));
    assert_eq!(m.target, ["sm_90a"]);
    assert_eq!(m.address_size, 64);

    // Module variables: const and global tables with initialisers, a plain global, dynamic smem.
    let names: Vec<&str> = m.vars.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["c_scale", "g_tab", "g_counter", "smem"]);
    let c = &m.vars[0];
    assert_eq!((c.space, c.ty, c.align, c.dims.clone()), (StateSpace::Const, ScalarType::B8, Some(4), vec![Some(16)]));
    assert_eq!(c.size(), 16);
    let init = c.init.as_ref().unwrap();
    assert_eq!(init.len(), 16);
    assert_eq!(init[2..4], [Operand::Int(128), Operand::Int(63)]);
    assert_eq!(m.vars[1].init.as_ref().unwrap().len(), 13); // trailing zeros omitted by nvcc
    assert_eq!(m.vars[2].init, None);
    assert_eq!((m.vars[2].ty, m.vars[2].dims.len()), (ScalarType::U32, 0));
    let smem = &m.vars[3];
    assert!(smem.is_extern);
    assert_eq!((smem.space, smem.align, smem.dims.clone(), smem.size()), (StateSpace::Shared, Some(16), vec![None], 0));

    // The __noinline__ device function with a return parameter.
    let names: Vec<&str> = m.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["_Z3mixffi", "_Z11warp_reducePKfPfi", "_Z9dyn_localPKiPfi"]);
    let mix = func(&m, "_Z3mixffi");
    assert!(!mix.is_entry);
    assert!(mix.linkage.is_empty());
    assert_eq!(mix.returns.len(), 1);
    assert_eq!((mix.returns[0].name.as_str(), mix.returns[0].ty), ("func_retval0", ScalarType::B32));
    assert_eq!(mix.params.len(), 2);
    let fma = inst_at(body(mix), 35);
    assert_eq!((fma.opcode.as_str(), mods(fma)), ("fma", vec!["rn", "f32"]));
    assert_eq!(fma.operands, [name("%f3"), name("%f2"), name("%f1"), Operand::F32(0x3FC0_0000)]);
    let st = inst_at(body(mix), 36);
    assert_eq!(st.operands, [addr("func_retval0", 0), name("%f3")]);
    let movc = inst_at(body(mix), 32);
    assert_eq!(movc.operands, [name("%rd4"), name("c_scale")]);

    // The reduction kernel.
    let k = func(&m, "_Z11warp_reducePKfPfi");
    assert!(k.is_entry);
    assert_eq!(k.linkage, ["visible"]);
    assert_eq!(k.line, 41);
    assert_eq!(k.directives, [("maxntid".to_string(), vec![256, 1, 1])]);
    let sizes: Vec<u32> = k.params.iter().map(|p| p.size()).collect();
    assert_eq!(sizes, [8, 8, 4]);
    let b = body(k);
    let Statement::Reg(r) = &b[0] else { panic!("{:?}", b[0]) };
    assert_eq!((r.ty, r.names.clone(), r.line), (ScalarType::Pred, vec![("%p".to_string(), Some(16))], 48));
    let Statement::Var(v) = &b[4] else { panic!("{:?}", b[4]) };
    assert_eq!((v.space, v.name.as_str(), v.size()), (StateSpace::Shared, "_ZZ11warp_reducePKfPfiE7partial", 32));
    let guarded = inst_at(b, 64);
    assert_eq!(guarded.guard, Some((false, "%p1".to_string())));
    assert_eq!((guarded.opcode.as_str(), guarded.operands.clone()), ("bra", vec![name("$L__BB1_2")]));
    assert_eq!(guarded.text, "@%p1 bra \t$L__BB1_2;");
    assert!(labels(b).contains(&"$L__BB1_2"));
    let shfl = inst_at(b, 76);
    assert_eq!((shfl.opcode.as_str(), mods(shfl)), ("shfl", vec!["sync", "bfly", "b32"]));
    assert_eq!(shfl.operands[0], Operand::PredPair("%r12".into(), "%p2".into()));
    assert_eq!(inst_at(b, 75).operands, [name("%r11"), Operand::Int(-1)]);
    assert_eq!(inst_at(b, 58).operands, [name("%r6"), name("%ctaid.x")]);
    assert_eq!(inst_at(b, 63).operands[1], Operand::F32(0));

    // The call sequence: a nested block with .reg and .param declarations.
    let blk = blocks(b);
    assert_eq!(blk.len(), 1);
    let cs = blk[0];
    assert!(matches!(&cs[0], Statement::Reg(r) if r.names == [("temp_param_reg".to_string(), None)]));
    let params: Vec<&str> = cs
        .iter()
        .filter_map(|s| match s {
            Statement::Var(v) if v.space == StateSpace::Param => Some(v.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(params, ["param0", "param1", "retval0"]);
    let call = inst_at(cs, 162);
    assert_eq!((call.opcode.as_str(), mods(call)), ("call", vec!["uni"]));
    assert_eq!(call.operands, [vec_of(&["retval0"]), name("_Z3mixffi"), vec_of(&["param0", "param1"])]);
    assert_eq!(call.text, "call.uni (retval0), _Z3mixffi, ( param0, param1 );");
    assert_eq!(inst_at(cs, 158).operands, [addr("param0", 0), name("%f6")]);
    let atom = inst_at(b, 179);
    assert_eq!((atom.opcode.as_str(), mods(atom)), ("atom", vec!["global", "add", "u32"]));

    // Local depot and %SPL.
    let d = func(&m, "_Z9dyn_localPKiPfi");
    let Statement::Var(depot) = &body(d)[0] else { panic!() };
    assert_eq!(
        (depot.space, depot.name.as_str(), depot.align, depot.size()),
        (StateSpace::Local, "__local_depot2", Some(16), 32)
    );
    assert!(
        matches!(&body(d)[2], Statement::Reg(r) if r.names == [("%SPL".to_string(), None)] && r.ty == ScalarType::B64)
    );
    assert_eq!(inst_at(body(d), 201).operands, [name("%SPL"), name("__local_depot2")]);
    let stl = inst_at(body(d), 248);
    assert_eq!(mods(stl), ["local", "v4", "f32"]);
    assert_eq!(stl.operands, [addr("%rd6", 16), vec_of(&["%f15", "%f14", "%f13", "%f16"])]);
    assert!(insts(body(d)).iter().any(|i| i.opcode == "bar" && mods(i) == ["red", "or", "pred"]));
    assert!(insts(body(d)).iter().any(|i| i.opcode == "vote" && mods(i) == ["sync", "ballot", "b32"]));
}

#[test]
fn fixture_tensor() {
    let m = parse(TENSOR).unwrap();
    assert_eq!(m.vars.len(), 0);
    let k = func(&m, "_Z8mma_tilePK13__nv_bfloat16S1_PfPt");
    assert_eq!(k.directives, [("maxntid".to_string(), vec![128, 1, 1]), ("minnctapersm".to_string(), vec![1])]);
    let b = body(k);
    let shared: Vec<(String, u32, u64)> = b
        .iter()
        .filter_map(|s| match s {
            Statement::Var(v) => Some((v.name.clone(), v.align.unwrap(), v.size())),
            _ => None,
        })
        .collect();
    assert_eq!(shared.len(), 3);
    assert_eq!((shared[0].1, shared[0].2), (128, 512));
    assert_eq!((shared[2].1, shared[2].2), (8, 8));

    let ldm = inst_at(b, 131);
    assert_eq!((ldm.opcode.as_str(), mods(ldm)), ("ldmatrix", vec!["sync", "aligned", "m8n8", "x4", "shared", "b16"]));
    assert_eq!(ldm.operands, [vec_of(&["%r25", "%r26", "%r27", "%r28"]), addr("%r29", 0)]);
    assert_eq!(mods(inst_at(b, 137))[4], "trans");
    let mma = inst_at(b, 145);
    assert_eq!(mma.opcode, "mma");
    assert_eq!(mods(mma), ["sync", "aligned", "m16n8k16", "row", "col", "f32", "bf16", "bf16", "f32"]);
    assert_eq!(
        mma.operands,
        [
            vec_of(&["%f1", "%f2", "%f3", "%f4"]),
            vec_of(&["%r25", "%r26", "%r27", "%r28"]),
            vec_of(&["%r30", "%r31"]),
            vec_of(&["%f1", "%f2", "%f3", "%f4"]),
        ]
    );
    let arrive = inst_at(b, 103);
    assert_eq!(mods(arrive), ["arrive", "shared::cta", "b64"]);
    assert_eq!(arrive.operands, [Operand::Sink, addr("%r22", 0)]);

    // Inline-asm blocks: `{ .reg .pred P1; WAIT: ... @!P1 bra WAIT; }` three times, plus the
    // one-instruction conversion blocks.
    let blk = blocks(b);
    let waits: Vec<&&Vec<Statement>> = blk.iter().filter(|s| labels(s) == ["WAIT"]).collect();
    assert_eq!(waits.len(), 3);
    for w in &waits {
        assert!(
            matches!(&w[0], Statement::Reg(r) if r.ty == ScalarType::Pred && r.names == [("P1".to_string(), None)])
        );
        let v = insts(w);
        assert_eq!(v[1].guard, Some((true, "P1".to_string())));
        assert_eq!(v[1].operands, [name("WAIT")]);
        assert_eq!(mods(v[0]), ["try_wait", "parity", "shared::cta", "b64"]);
    }
    let cvt = inst_at(b, 163);
    assert_eq!((cvt.opcode.as_str(), mods(cvt)), ("cvt", vec!["rn", "satfinite", "e4m3x2", "f32"]));
    assert_eq!(cvt.operands, [name("%rs1"), name("%f10"), name("%f9")]);
    assert_eq!(cvt.text, "cvt.rn.satfinite.e4m3x2.f32 %rs1, %f10, %f9;");
    assert!(blk.iter().any(|s| insts(s).iter().any(|i| i.line == 163)));
    assert_eq!(mods(inst_at(b, 171)), ["rn", "bf16x2", "f32"]);
    assert_eq!(inst_at(b, 174).operands, [vec_of(&["%rs2", "%rs3"]), name("%r41")]);
    assert_eq!(inst_at(b, 161).operands[2], Operand::F32(0xC040_0000));
    assert_eq!(inst_at(b, 186).operands[0], addr("%rd16", 1024));
    let cpa =
        insts(b).into_iter().find(|i| i.opcode == "cp" && mods(i) == ["async", "cg", "shared", "global"]).unwrap();
    assert_eq!(cpa.operands[2], Operand::Int(16));

    let v = func(&m, "_Z8vec_loadPK5uint4PS_d");
    assert_eq!(v.params[2].ty, ScalarType::F64);
    let b = body(v);
    let ld = inst_at(b, 223);
    assert_eq!(mods(ld), ["global", "nc", "v4", "u32"]);
    assert_eq!(ld.operands, [vec_of(&["%r1", "%r2", "%r3", "%r4"]), addr("%rd1", 0)]);
    assert_eq!(inst_at(b, 225).operands[2], Operand::Int(-2147483648));
    assert_eq!(inst_at(b, 230).operands[2], Operand::F64(0x3FF4_0000_0000_0000));
    assert_eq!(inst_at(b, 234).operands[0], addr("%rd8", 8000));
}

#[test]
fn fixture_tma() {
    let m = parse(TMA).unwrap();
    assert_eq!(m.vars.len(), 1);
    assert_eq!((m.vars[0].name.as_str(), m.vars[0].align, m.vars[0].is_extern), ("dsmem", Some(1024), true));
    let k = &m.functions[0];
    assert_eq!(
        k.directives,
        [
            ("maxntid".to_string(), vec![128, 1, 1]),
            ("minnctapersm".to_string(), vec![1]),
            ("explicitcluster".to_string(), vec![]),
            ("reqnctapercluster".to_string(), vec![1, 1, 1]),
        ]
    );
    assert_eq!(k.params.len(), 3);
    let p0 = &k.params[0];
    assert_eq!(
        (p0.ty, p0.align, p0.array_len, p0.size(), p0.alignment()),
        (ScalarType::B8, Some(128), Some(128), 128, 128)
    );
    assert_eq!((k.params[2].size(), k.params[2].alignment()), (4, 4));
    let b = body(k);
    assert_eq!(inst_at(b, 33).operands, [name("%rd4"), name("_Z8tma_copy14CUtensorMap_stS_i_param_0")]);
    let elect = inst_at(b, 39);
    assert_eq!(elect.operands, [Operand::PredPair("_".into(), "P".into()), Operand::Int(0xffff_ffff)]);
    assert_eq!(inst_at(b, 40).operands, [name("%r8"), Operand::Int(1), Operand::Int(0), name("P")]);
    assert!(b.iter().any(|s| matches!(s, Statement::Pragma(p, 75) if p == "nounroll")));
    let tma = inst_at(b, 86);
    assert_eq!(tma.opcode, "cp");
    assert_eq!(
        mods(tma),
        ["async", "bulk", "tensor", "2d", "shared::cluster", "global", "tile", "mbarrier::complete_tx::bytes"]
    );
    assert_eq!(
        tma.operands,
        [addr("%r14", 0), Operand::Vector(vec![addr("%rd6", 0), vec_of(&["%r25", "%r16"])]), addr("%r12", 0)]
    );
    let store = inst_at(b, 112);
    assert_eq!(mods(store), ["async", "bulk", "tensor", "2d", "global", "shared::cta", "bulk_group"]);
    assert_eq!(store.operands[0], Operand::Vector(vec![addr("%rd7", 0), vec_of(&["%r25", "%r21"])]));
    assert_eq!(inst_at(b, 118).operands, [Operand::Int(0)]);
    assert_eq!(inst_at(b, 130).operands, [name("%r23"), name("%dynamic_smem_size")]);
    assert_eq!(inst_at(b, 133).operands, [name("%r24"), name("%laneid")]);
    let trap = inst_at(b, 141);
    assert_eq!((trap.opcode.as_str(), trap.operands.len()), ("trap", 0));
    // The wait loop block has two labels and a forward branch.
    let blk = blocks(b);
    let w = blk.iter().find(|s| labels(s) == ["LAB_WAIT", "DONE"]).expect("wait block");
    assert_eq!(insts(w).len(), 3);
}

#[test]
fn fixture_debug() {
    let m = parse(DBG).unwrap();
    assert_eq!(m.target, ["sm_90a", "debug"]);
    assert_eq!(m.functions.len(), 2);
    let f = func(&m, "_Z5twicei");
    assert_eq!(f.linkage, ["visible"]);
    assert_eq!(labels(body(f)), ["$L__func_begin0", "$L__tmp0", "$L__tmp1", "$L__func_end0"]);
    assert_eq!(insts(body(f)).len(), 4);
    assert!(!body(f).iter().any(|s| matches!(s, Statement::Pragma(..))));
    let k = func(&m, "_Z4axpyfPKfPfi");
    assert!(insts(body(k)).iter().any(|i| i.opcode == "call"));
    assert!(m.vars.is_empty());
}

#[test]
fn fixtures_line_numbers_and_text_match_the_source() {
    for src in FIXTURES {
        let m = parse(src).unwrap();
        let lines: Vec<&str> = src.lines().collect();
        for f in &m.functions {
            assert!(lines[f.line as usize - 1].contains(if f.is_entry { ".entry" } else { ".func" }));
            for i in insts(body(f)) {
                let l = lines[i.line as usize - 1].trim();
                assert!(l.contains(&i.text) || i.text.starts_with(l), "line {}: {l:?} vs {:?}", i.line, i.text);
                let op = match i.guard {
                    Some(_) => i.text.split_once(char::is_whitespace).map(|x| x.1.trim_start()).unwrap_or(""),
                    None => &i.text,
                };
                assert!(op.starts_with(&i.opcode), "{op}");
            }
        }
    }
}

// ---- hand-written forms --------------------------------------------------------------------

const HANDWRITTEN: &str = r#"
/* a header comment
   over lines */
.version 8.4
.target sm_90a
.address_size 64

.global .align 4 .u32 tab[4] = {1, 2, 3, 4};
.global .align 8 .f64 dtab[2] = {1.5, 0d4000000000000000};
.const .align 4 .f32 ctab[2][2] = {{1.0, 0f40000000}, {-3, 4}};
.global .u32 a, b[2] = {7, 8};
.visible .global .align 8 .u64 ptrs[2] = {generic(tab), generic(tab)+8};
.global .v4 .f32 vecs[3];
.shared .align 16 .b8 sbuf[1024];
.extern .shared .align 1024 .b8 smem[];
.extern .func (.param .b32 r) ext_fn (.param .b64 p);
.weak .func weak_fn () { ret; }

.func (.param .b32 ret0, .param .b64 ret1) two_returns (.reg .b32 x, .param .align 16 .b8 blob[64])
.noreturn
{
    ret;
}

.visible .entry kern(
    .param .align 64 .b8 tmap[128],
    .param .u64 .ptr .global .align 16 gp,
    .param .u32 n
)
.maxnreg 128
.reqntid 128, 1
.minnctapersm 2
.pragma "nounroll";
{
    .reg .b32 %r<42>;
    .reg .pred p, q;
    .reg .b64 %rd<8>, %x;
    .local .align 16 .b8 __local_depot0[32];
    .shared .align 8 .b64 bar0;
    mov.u64 %rd1, smem;
    mov.u64 %rd2, smem+16;
    mov.u32 %r1, %tid.x; mov.u32 %r2, %ctaid.y;
    ld.shared.u32 %r3, [smem+8];
    ld.shared.u32 %r3, [%r1];
    ld.param.u32 %r4, [n];
    ld.global.u32 %r5, [%rd1+-4];
    ld.global.u32 %r5, [%rd1-4];
    ld.global.u32 %r5, [%rd1 + 0x10];
    ld.global.u32 %r5, [256];
    setp.lt.u32 p|q, %r1, 0x20;
    @p add.s32 %r6, %r6, -5;
    @!q bra.uni $L__BB0_2;
    selp.b32 %r7, 1, 0, !p;
    add.f32 %r8, %r8, 1.5;
    mul.f64 %x, %x, 2.5e-1;
    mov.b32 %r9, 0f3F800000;
    mov.b32 %r9, -0f3F800000;
    mov.b64 %x, 0d3FF0000000000000;
    mov.u32 %r10, 017;
    mov.u32 %r10, 0b101;
    mov.u32 %r10, 4294967295U;
    st.local.v2.u32 [__local_depot0+8], {%r1, _};
    vote.sync.ballot.b32 %r11, p, 0xffffffff;
$L__BB0_2:
    .pragma "nounroll";
    { // inline asm
        .reg .pred P;
        W:
        @P bra W;
    }
    {
        .reg .pred P;
        W:
        @P bra W;
        { .reg .b32 t; W: bra W; }
    }
    call.uni (%r20), ext_fn, (%rd1);
    call.uni ext_fn, ();
    call.uni weak_fn;
    prototype_0 : .callprototype (.param .b32 _) _ (.param .b64 _);
    wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {%r1, %r2}, %rd1, %rd2, p, 1, 1;
    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%r1], [%rd3, {%r2, %r3}], [%r4];
    ret;
}
"#;

#[test]
fn handwritten_module() {
    let m = parse(HANDWRITTEN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.version, (8, 4));
    let v: Vec<(&str, StateSpace, Vec<Option<u32>>, bool)> =
        m.vars.iter().map(|v| (v.name.as_str(), v.space, v.dims.clone(), v.is_extern)).collect();
    assert_eq!(
        v,
        [
            ("tab", StateSpace::Global, vec![Some(4)], false),
            ("dtab", StateSpace::Global, vec![Some(2)], false),
            ("ctab", StateSpace::Const, vec![Some(2), Some(2)], false),
            ("a", StateSpace::Global, vec![], false),
            ("b", StateSpace::Global, vec![Some(2)], false),
            ("ptrs", StateSpace::Global, vec![Some(2)], false),
            ("vecs", StateSpace::Global, vec![Some(3), Some(4)], false),
            ("sbuf", StateSpace::Shared, vec![Some(1024)], false),
            ("smem", StateSpace::Shared, vec![None], true),
        ]
    );
    assert_eq!(m.vars[0].init, Some(vec![Operand::Int(1), Operand::Int(2), Operand::Int(3), Operand::Int(4)]));
    assert_eq!(m.vars[1].init, Some(vec![Operand::F64(1.5f64.to_bits()), Operand::F64(2.0f64.to_bits())]));
    assert_eq!(
        m.vars[2].init,
        Some(vec![Operand::F32(1.0f32.to_bits()), Operand::F32(0x4000_0000), Operand::Int(-3), Operand::Int(4)])
    );
    assert_eq!(m.vars[3].init, None);
    assert_eq!(m.vars[4].init, Some(vec![Operand::Int(7), Operand::Int(8)]));
    assert_eq!(m.vars[5].init, Some(vec![name("tab"), Operand::SymbolOffset("tab".into(), 8)]));
    assert_eq!(m.vars[6].size(), 48);

    let names: Vec<(&str, bool, Option<usize>)> =
        m.functions.iter().map(|f| (f.name.as_str(), f.is_entry, f.body.as_ref().map(|b| b.len()))).collect();
    assert_eq!(
        names,
        [
            ("ext_fn", false, None),
            ("weak_fn", false, Some(1)),
            ("two_returns", false, Some(1)),
            ("kern", true, Some(names_len()))
        ]
    );
    assert_eq!(m.functions[0].linkage, ["extern"]);
    assert_eq!(m.functions[1].linkage, ["weak"]);
    let tr = &m.functions[2];
    assert_eq!(tr.returns.len(), 2);
    assert_eq!(tr.params[0].ty, ScalarType::B32);
    assert_eq!((tr.params[1].size(), tr.params[1].alignment()), (64, 16));
    assert_eq!(tr.directives, [("noreturn".to_string(), vec![])]);

    let k = &m.functions[3];
    assert_eq!(
        k.directives,
        [
            ("maxnreg".to_string(), vec![128]),
            ("reqntid".to_string(), vec![128, 1]),
            ("minnctapersm".to_string(), vec![2])
        ]
    );
    assert_eq!(k.params[1].attrs, ["ptr", "global", "align 16"]);
    assert_eq!((k.params[1].align, k.params[1].size()), (None, 8));
    assert_eq!((k.params[0].size(), k.params[0].alignment()), (128, 64));

    let b = body(k);
    assert!(matches!(&b[1], Statement::Reg(r) if r.names == [("p".to_string(), None), ("q".to_string(), None)]));
    assert!(matches!(&b[2], Statement::Reg(r) if r.names == [("%rd".to_string(), Some(8)), ("%x".to_string(), None)]));
    let all = insts(b);
    let ops: Vec<Vec<Operand>> = all.iter().map(|i| i.operands.clone()).collect();
    assert_eq!(ops[0], [name("%rd1"), name("smem")]);
    assert_eq!(ops[1], [name("%rd2"), Operand::SymbolOffset("smem".into(), 16)]);
    assert_eq!(all[2].line, all[3].line); // two instructions on one line
    assert_eq!(all[3].text, "mov.u32 %r2, %ctaid.y;");
    assert_eq!(ops[4][1], addr("smem", 8));
    assert_eq!(ops[5][1], addr("%r1", 0));
    assert_eq!(ops[6][1], addr("n", 0));
    assert_eq!(ops[7][1], addr("%rd1", -4));
    assert_eq!(ops[8][1], addr("%rd1", -4));
    assert_eq!(ops[9][1], addr("%rd1", 16));
    assert_eq!(ops[10][1], Operand::Address { base: None, offset: 256 });
    assert_eq!(ops[11], [Operand::PredPair("p".into(), "q".into()), name("%r1"), Operand::Int(32)]);
    assert_eq!(all[12].guard, Some((false, "p".into())));
    assert_eq!(ops[12][2], Operand::Int(-5));
    assert_eq!(
        (all[13].guard.clone(), all[13].opcode.as_str(), mods(all[13])),
        (Some((true, "q".into())), "bra", vec!["uni"])
    );
    assert_eq!(ops[14][3], Operand::Not("p".into()));
    assert_eq!(ops[15][2], Operand::F32(1.5f32.to_bits()));
    assert_eq!(ops[16][2], Operand::F64(0.25f64.to_bits()));
    assert_eq!(ops[17][1], Operand::F32(0x3F80_0000));
    assert_eq!(ops[18][1], Operand::F32(0xBF80_0000));
    assert_eq!(ops[19][1], Operand::F64(0x3FF0_0000_0000_0000));
    assert_eq!(ops[20][1], Operand::Int(15));
    assert_eq!(ops[21][1], Operand::Int(5));
    assert_eq!(ops[22][1], Operand::Int(4294967295));
    assert_eq!(ops[23], [addr("__local_depot0", 8), Operand::Vector(vec![name("%r1"), Operand::Sink])]);
    assert_eq!(ops[24][2], Operand::Int(0xffff_ffff));

    // Labels, pragma, nested blocks with repeated labels.
    assert!(labels(b).contains(&"$L__BB0_2"));
    assert!(b.iter().any(|s| matches!(s, Statement::Pragma(p, _) if p == "nounroll")));
    let blk = blocks(b);
    assert_eq!(blk.len(), 2);
    assert_eq!(labels(blk[0]), ["W"]);
    assert_eq!(labels(blk[1]), ["W"]);
    let inner = blocks(blk[1]);
    assert_eq!(inner.len(), 1);
    assert_eq!(labels(inner[0]), ["W"]);

    // Calls.
    let calls: Vec<&&Instruction> = all.iter().filter(|i| i.opcode == "call").collect();
    assert_eq!(calls[0].operands, [vec_of(&["%r20"]), name("ext_fn"), vec_of(&["%rd1"])]);
    assert_eq!(calls[1].operands, [name("ext_fn"), Operand::Vector(vec![])]);
    assert_eq!(calls[2].operands, [name("weak_fn")]);
    // `.callprototype` after a label: the label, then the directive kept as text.
    assert!(labels(b).contains(&"prototype_0"));
    assert!(b
        .iter()
        .any(|s| matches!(s, Statement::Pragma(p, _) if p == "callprototype (.param .b32 _) _ (.param .b64 _)")));
    let wg = all.iter().find(|i| i.opcode == "wgmma").unwrap();
    assert_eq!(wg.operands[3..], [name("p"), Operand::Int(1), Operand::Int(1)]);
    let tma = all.iter().find(|i| i.opcode == "cp").unwrap();
    assert_eq!(tma.operands[1], Operand::Vector(vec![addr("%rd3", 0), vec_of(&["%r2", "%r3"])]));
}

fn names_len() -> usize {
    // kern's top level: 5 decls + 25 instructions + label + pragma + 2 blocks + 3 calls + label +
    // callprototype + wgmma + cp + ret.
    5 + 25 + 1 + 1 + 2 + 3 + 1 + 1 + 1 + 1 + 1
}

#[test]
fn special_registers_and_odd_operands() {
    let i = one_inst("mov.u32 %r1, %dynamic_smem_size;");
    assert_eq!(i.operands[1], name("%dynamic_smem_size"));
    let i = one_inst("mov.u32 %r1, %nctaid.z;");
    assert_eq!(i.operands[1], name("%nctaid.z"));
    let i = one_inst("bar.red.or.pred %p1, 0, !%p2;");
    assert_eq!(i.operands, [name("%p1"), Operand::Int(0), Operand::Not("%p2".into())]);
    let i = one_inst("mov.u64 %rd1, generic(sbuf);");
    assert_eq!(i.operands[1], name("sbuf"));
    let i = one_inst("@!%p1 ld.global.nc.v4.u32 {%r1,%r2,%r3,%r4}, [%rd4+16];");
    assert_eq!(i.text, "@!%p1 ld.global.nc.v4.u32 {%r1,%r2,%r3,%r4}, [%rd4+16];");
    assert_eq!(i.guard, Some((true, "%p1".into())));
    let i = one_inst("mov.f32 %f1, -1.5;");
    assert_eq!(i.operands[1], Operand::F32((-1.5f32).to_bits()));
    let i = one_inst("mov.f32 %f1, 1e10;");
    assert_eq!(i.operands[1], Operand::F32(1e10f32.to_bits()));
    let i = one_inst("add.s64 %rd1, %rd1, -9223372036854775808;");
    assert_eq!(i.operands[2], Operand::Int(i64::MIN));
    let i = one_inst("mov.b64 %rd1, 0xFFFFFFFFFFFFFFFF;");
    assert_eq!(i.operands[1], Operand::Int(-1));
    let i = one_inst("exit;");
    assert_eq!((i.opcode.as_str(), i.mods.len(), i.operands.len()), ("exit", 0, 0));
    let i = one_inst("bar.sync 1, 128;");
    assert_eq!(i.operands, [Operand::Int(1), Operand::Int(128)]);
}

// ---- errors --------------------------------------------------------------------------------

fn err(src: &str) -> ParseError {
    match parse(src) {
        Ok(m) => panic!("parsed: {m:?}"),
        Err(e) => e,
    }
}

#[test]
fn errors_name_the_line_and_the_token() {
    let e = err(".version 8.4\n.target sm_90a\n.entry k()\n{\n  mov.u32 %r1, %r2\n  ret;\n}\n");
    assert_eq!(e.line, 6);
    assert!(e.message.contains("`ret`"), "{e}");
    let e = err(".entry k()\n{\n  add.s32 %r1, , %r2;\n}\n");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("`,`"), "{e}");
    let e = err(".entry k()\n{\n  ld.global.u32 %r1, [%rd1+%r2];\n}\n");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("%r2"), "{e}");
    let e = err(".entry k()\n{\n  .reg .b33 %r<2>;\n}\n");
    assert!(e.message.contains(".b33"), "{e}");
    let e = err(".entry k()\n{\n  ret;\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("unclosed"), "{e}");
    let e = err(".version 8.4\n.frobnicate\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains(".frobnicate"), "{e}");
    let e = err(".entry k()\n{\n  mov.f32 %f1, 0f3F80;\n}\n");
    assert!(e.message.contains("0f3F80"), "{e}");
    let e = err(".entry k()\n{\n  mov.u32 %r1, 5 # 3;\n}\n");
    assert_eq!(e.line, 3);
    assert!(e.message.contains('#'), "{e}");
    let e = err(".entry k()\n{\n /* open\n\n");
    assert_eq!(e.line, 3);
    let e = err(".visible\n");
    assert_eq!(e.line, 1);
    let e = err(".entry k(.param .u32 a .param .u32 b) { ret; }");
    assert!(e.message.contains(".param"), "{e}");
    let e = err(".entry k() { ld..u32 %r1, [a]; }");
    assert!(e.message.contains("empty modifier"), "{e}");
    let e = err(".entry k() { 1: ret; }");
    assert!(e.message.contains("label"), "{e}");
    let e = err(".entry k() { mov.u32 %r1, 99999999999999999999999; }");
    assert!(e.message.contains("bad number"), "{e}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let src = format!(".entry k()\n{}{}", "{".repeat(100_000), "}".repeat(100_000));
    assert!(err(&src).message.contains("nested"));
    let src = format!(".global .u32 x[1] = {}1{};", "{".repeat(100_000), "}".repeat(100_000));
    assert!(err(&src).message.contains("nested"));
    let src = ".entry k() { mov.u32 %r1, {{{{{{%r1}}}}}}; }";
    assert!(err(src).message.contains("nested"));
}

#[test]
fn empty_and_comment_only_input() {
    assert_eq!(parse("").unwrap(), Module::default());
    assert_eq!(parse("// nothing\n/* here */\n").unwrap(), Module::default());
}

// ---- speed ---------------------------------------------------------------------------------

#[test]
fn five_thousand_lines_parse_quickly() {
    // The body of the reduction kernel repeated until the file has ~5k lines.
    let start = BASICS.find(".visible .entry _Z11warp_reducePKfPfi").unwrap();
    let end = BASICS.find("\t// .globl\t_Z9dyn_localPKiPfi").unwrap();
    let kernel = &BASICS[start..end];
    let mut src = String::from(".version 8.4\n.target sm_90a\n.address_size 64\n");
    let mut n = 0;
    while src.lines().count() < 5000 {
        src.push_str(&kernel.replace("_Z11warp_reducePKfPfi(", &format!("k{n}(")));
        n += 1;
    }
    // Best of a few runs (the first one also pays for page faults of a cold heap).
    let mut dt = std::time::Duration::MAX;
    let mut m = Module::default();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let r = parse(&src).unwrap();
        dt = dt.min(t.elapsed());
        m = r; // drops the previous result outside the timed region
    }
    assert_eq!(m.functions.len(), n);
    eprintln!("parsed {} lines in {dt:?}", src.lines().count());
    // Generous: the target is well under 10 ms in release; this also runs unoptimised.
    assert!(dt.as_millis() < 500, "{dt:?}");
}

// ---- fuzzing -------------------------------------------------------------------------------

fn mutate(src: &str, edits: &[(usize, u8, u8)]) -> String {
    let mut b: Vec<u8> = src.as_bytes().to_vec();
    for &(pos, kind, byte) in edits {
        if b.is_empty() {
            b.push(byte);
            continue;
        }
        let p = pos % b.len();
        match kind % 5 {
            0 => {
                b.remove(p);
            }
            1 => b.insert(p, byte),
            2 => b[p] = byte,
            3 => {
                // Insert a piece of PTX syntax.
                const BITS: [&[u8]; 12] = [b"{", b"}", b";", b"[", b"]", b"(", b")", b",", b"@!", b"::", b"/*", b"\""];
                let bit = BITS[byte as usize % BITS.len()];
                for (k, c) in bit.iter().enumerate() {
                    b.insert(p + k, *c);
                }
            }
            _ => b.truncate(p),
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = parse(&s);
    }

    #[test]
    fn random_ptx_alphabet_never_panics(s in "[ .%_$a-z0-9:;,{}\\[\\]()+<>=@!|\n\"/*-]{0,300}") {
        let _ = parse(&s);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
    ) {
        let src = if which == 4 { HANDWRITTEN } else { FIXTURES[which] };
        let s = mutate(src, &edits);
        if let Err(e) = parse(&s) {
            // Every error points inside the file.
            prop_assert!(e.line >= 1 && e.line as usize <= s.lines().count().max(1), "{e}");
        }
    }
}

// ---- every PTX file in the repository ------------------------------------------------------

/// The kernels the binary embeds (`kernels/ptx`) and the emulator's own test kernels
/// (`kernels/emu/tests/ptx`) all parse.
#[test]
fn repository_ptx_parses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for dir in [root.join("../ptx"), root.join("tests/ptx"), root.join("tests/parse_fixtures")] {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "ptx") {
                let src = std::fs::read_to_string(&p).unwrap();
                let m = parse(&src).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!(!m.functions.is_empty(), "{}", p.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= FIXTURES.len());
}
