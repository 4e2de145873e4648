//! Decoding of the asynchronous-proxy instructions: `mbarrier.*`, `cp.async.bulk(.tensor)`,
//! bulk groups and `fence.proxy.async`. Executed by `exec::asyncops`.
use super::inst::*;
use super::Builder;
use super::Imm;
use crate::ptx::ast::{Instruction, Operand};

type Res<T> = Result<T, String>;

/// A memory operand: state space (Shared, Global, Param or Generic), base register, offset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AAddr {
    pub space: Space,
    pub base: R,
    pub off: i64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MbarOp {
    Init { count: R },
    /// `arrive` / `arrive.expect_tx` / `arrive_drop` (count NONE: 1; tx NONE: no expect_tx).
    Arrive { d: R, count: R, tx: R, drop: bool },
    ExpectTx { tx: R },
    CompleteTx { tx: R },
    /// `try_wait` / `test_wait`: parity form (`arg` is the parity) or state form (`arg` is a
    /// state returned by arrive).
    Wait { test: bool, parity: bool, d: P, arg: R },
    Inval,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AsyncOp {
    Mbar { op: MbarOp, bar: AAddr },
    PendingCount { d: R, state: R },
    BulkLoad { dst: AAddr, src: AAddr, size: R, bar: AAddr },
    BulkStore { dst: AAddr, src: AAddr, size: R },
    BulkCommit,
    /// `cp.async.bulk.wait_group(.read) n`.
    BulkWait { n: u32, read: bool },
    TensorLoad { rank: u8, dst: AAddr, map: AAddr, coords: [R; 5], bar: AAddr },
    TensorStore { rank: u8, map: AAddr, coords: [R; 5], src: AAddr },
    FenceProxyAsync,
}

fn addr(b: &mut Builder, o: &Operand, default: Space) -> Res<AAddr> {
    let (sp, _, base, off) = b.addr(o)?;
    Ok(AAddr { space: sp.unwrap_or(default), base, off })
}

fn take(mods: &mut Vec<String>, s: &str) -> bool {
    if let Some(i) = mods.iter().position(|x| x == s) {
        mods.remove(i);
        true
    } else {
        false
    }
}

fn done(mods: &[String]) -> Res<()> {
    match mods.first() {
        Some(x) => Err(format!("modifier .{x}")),
        None => Ok(()),
    }
}

fn u32src(b: &mut Builder, o: &Operand) -> Res<R> {
    b.src(o, Imm::Int(It::U32))
}

/// `mbarrier.*`.
pub(crate) fn mbarrier(b: &mut Builder, i: &Instruction) -> Res<()> {
    let mut m: Vec<String> = i.mods.clone();
    let space = if take(&mut m, "shared::cta") || take(&mut m, "shared") || take(&mut m, "shared::cluster") {
        Space::Shared
    } else {
        Space::Generic
    };
    for h in ["release", "acquire", "relaxed", "cta", "cluster"] {
        take(&mut m, h);
    }
    let o = &i.operands;
    let verb = if m.is_empty() { String::new() } else { m.remove(0) };
    let b64 = take(&mut m, "b64");
    let bar_at = |b: &mut Builder, k: usize| -> Res<AAddr> { addr(b, o.get(k).ok_or("missing barrier operand")?, space) };
    let op = match verb.as_str() {
        "init" => {
            if o.len() != 2 {
                return Err("mbarrier.init operands".into());
            }
            MbarOp::Init { count: u32src(b, &o[1])? }
        }
        "inval" => MbarOp::Inval,
        "arrive" | "arrive_drop" => {
            let tx = take(&mut m, "expect_tx");
            let noc = take(&mut m, "noComplete");
            if noc {
                return Err(".noComplete".into());
            }
            // d, [addr] (, count | tx)
            let d = b.dst(&o[0])?;
            let (count, txr) = match (o.len(), tx) {
                (2, false) => (NONE, NONE),
                (3, false) => (u32src(b, &o[2])?, NONE),
                (3, true) => (NONE, u32src(b, &o[2])?),
                _ => return Err("mbarrier.arrive operands".into()),
            };
            MbarOp::Arrive { d, count, tx: txr, drop: verb == "arrive_drop" }
        }
        "expect_tx" | "complete_tx" => {
            if o.len() != 2 {
                return Err("mbarrier tx operands".into());
            }
            let tx = u32src(b, &o[1])?;
            if verb == "expect_tx" {
                MbarOp::ExpectTx { tx }
            } else {
                MbarOp::CompleteTx { tx }
            }
        }
        "try_wait" | "test_wait" => {
            let parity = take(&mut m, "parity");
            if !(3..=4).contains(&o.len()) {
                return Err("mbarrier wait operands".into());
            }
            let d = b.pdst(&o[0])?;
            let arg = if parity { u32src(b, &o[2])? } else { b.src(&o[2], Imm::Int(It::U64))? };
            // o[3]: the optional suspend-time hint, ignored.
            MbarOp::Wait { test: verb == "test_wait", parity, d, arg }
        }
        "pending_count" => {
            done(&m)?;
            if o.len() != 2 {
                return Err("mbarrier.pending_count operands".into());
            }
            let d = b.dst(&o[0])?;
            let state = b.src(&o[1], Imm::Int(It::U64))?;
            b.emit(Op::Async(Box::new(AsyncOp::PendingCount { d, state })));
            return Ok(());
        }
        _ => return Err(format!("mbarrier.{verb}")),
    };
    if !b64 {
        return Err("mbarrier needs .b64".into());
    }
    done(&m)?;
    let bar = bar_at(b, if matches!(op, MbarOp::Init { .. } | MbarOp::Inval | MbarOp::ExpectTx { .. } | MbarOp::CompleteTx { .. }) { 0 } else { 1 })?;
    b.emit(Op::Async(Box::new(AsyncOp::Mbar { op, bar })));
    Ok(())
}

fn tensor_operand(b: &mut Builder, o: &Operand, rank: usize) -> Res<(AAddr, [R; 5])> {
    let Operand::Vector(v) = o else { return Err("expected [tensorMap, {coords}]".into()) };
    if v.len() != 2 {
        return Err("expected [tensorMap, {coords}]".into());
    }
    let map = addr(b, &v[0], Space::Generic)?;
    if map.space != Space::Generic {
        return Err("the tensor map operand must be a generic address (ptxas: state space mismatch); take a parameter's address with cvta.param".into());
    }
    let cs = match &v[1] {
        Operand::Vector(c) => c.clone(),
        x => vec![x.clone()],
    };
    if cs.len() != rank {
        return Err(format!("{rank}d tensor copy with {} coordinates", cs.len()));
    }
    let mut coords = [R_ZERO; 5];
    for (k, c) in cs.iter().enumerate() {
        coords[k] = b.src(c, Imm::Int(It::S32))?;
    }
    Ok((map, coords))
}

/// `cp.async.bulk...` (called with the modifiers after `.async`).
pub(crate) fn bulk(b: &mut Builder, i: &Instruction) -> Res<()> {
    let mut m: Vec<String> = i.mods.clone();
    take(&mut m, "async");
    take(&mut m, "bulk");
    let hint = take(&mut m, "L2::cache_hint");
    let o: Vec<Operand> = {
        let mut o = i.operands.clone();
        if hint {
            o.pop();
        }
        o
    };
    if take(&mut m, "commit_group") {
        done(&m)?;
        b.emit(Op::Async(Box::new(AsyncOp::BulkCommit)));
        return Ok(());
    }
    if take(&mut m, "wait_group") {
        let read = take(&mut m, "read");
        done(&m)?;
        let n = match o.first() {
            Some(Operand::Int(v)) if *v >= 0 => *v as u32,
            _ => return Err("wait_group needs an immediate".into()),
        };
        b.emit(Op::Async(Box::new(AsyncOp::BulkWait { n, read })));
        return Ok(());
    }
    if take(&mut m, "prefetch") {
        b.emit(Op::Nop);
        return Ok(());
    }
    if m.iter().any(|x| x.starts_with("multicast")) {
        return Err("multicast bulk copies (clusters) are not supported".into());
    }
    let tensor = take(&mut m, "tensor");
    let rank = if tensor {
        let r = ["1d", "2d", "3d", "4d", "5d"].iter().position(|d| take(&mut m, d)).ok_or("tensor copy rank")?;
        take(&mut m, "tile");
        if m.iter().any(|x| x.starts_with("im2col")) {
            return Err("im2col tensor copies are not supported".into());
        }
        r + 1
    } else {
        0
    };
    // The destination's state space comes first.
    let first_space = m.iter().find(|x| matches!(x.as_str(), "global" | "shared" | "shared::cta" | "shared::cluster")).cloned();
    let load = if first_space.as_deref() != Some("global") && (take(&mut m, "shared::cluster") || take(&mut m, "shared::cta")) {
        if !take(&mut m, "global") {
            return Err("bulk copy into shared memory needs a .global source".into());
        }
        if !take(&mut m, "mbarrier::complete_tx::bytes") {
            return Err("bulk load needs .mbarrier::complete_tx::bytes".into());
        }
        true
    } else if take(&mut m, "global") {
        if !(take(&mut m, "shared::cta") || take(&mut m, "shared")) || !take(&mut m, "bulk_group") {
            return Err("bulk store needs .global.shared::cta.bulk_group".into());
        }
        false
    } else {
        return Err("bulk copy direction (shared::cluster-shared::cta forms are not supported)".into());
    };
    done(&m)?;
    let op = match (tensor, load) {
        (false, true) => {
            if o.len() != 4 {
                return Err("cp.async.bulk load operands".into());
            }
            AsyncOp::BulkLoad {
                dst: addr(b, &o[0], Space::Shared)?,
                src: addr(b, &o[1], Space::Global)?,
                size: u32src(b, &o[2])?,
                bar: addr(b, &o[3], Space::Shared)?,
            }
        }
        (false, false) => {
            if o.len() != 3 {
                return Err("cp.async.bulk store operands".into());
            }
            AsyncOp::BulkStore { dst: addr(b, &o[0], Space::Global)?, src: addr(b, &o[1], Space::Shared)?, size: u32src(b, &o[2])? }
        }
        (true, true) => {
            if o.len() != 3 {
                return Err("cp.async.bulk.tensor load operands".into());
            }
            let dst = addr(b, &o[0], Space::Shared)?;
            let (map, coords) = tensor_operand(b, &o[1], rank)?;
            let bar = addr(b, &o[2], Space::Shared)?;
            AsyncOp::TensorLoad { rank: rank as u8, dst, map, coords, bar }
        }
        (true, false) => {
            if o.len() != 2 {
                return Err("cp.async.bulk.tensor store operands".into());
            }
            let (map, coords) = tensor_operand(b, &o[0], rank)?;
            let src = addr(b, &o[1], Space::Shared)?;
            AsyncOp::TensorStore { rank: rank as u8, map, coords, src }
        }
    };
    b.emit(Op::Async(Box::new(op)));
    Ok(())
}

/// `fence.proxy.async(.shared::cta)`: emits it and returns true when this is that fence.
pub(crate) fn fence(b: &mut Builder, i: &Instruction) -> bool {
    let m = &i.mods;
    // `.global` alone orders no shared-memory accesses.
    if m.iter().any(|x| x == "proxy") && m.iter().any(|x| x == "async") && !m.iter().any(|x| x == "global") {
        b.emit(Op::Async(Box::new(AsyncOp::FenceProxyAsync)));
        return true;
    }
    false
}
