//! The instruction surface of a PTX module, for the coverage gate: which instruction forms it
//! uses, and which of them the decoder cannot run.
use std::collections::{BTreeSet, HashMap};

use crate::api::{EmuError, ErrorKind};
use crate::decode::{self, ModuleEnv};
use crate::ptx::ast::{Statement, StateSpace};

fn parse(ptx: &str) -> Result<crate::ptx::Module, EmuError> {
    crate::ptx::parse(ptx).map_err(|e| EmuError::new(ErrorKind::Parse, format!("line {}: {}", e.line, e.message)))
}

/// Every instruction form the module uses: the opcode plus its modifiers, e.g.
/// "ld.global.nc.v4.u32".
pub fn forms(ptx: &str) -> Result<BTreeSet<String>, EmuError> {
    let m = parse(ptx)?;
    let mut out = BTreeSet::new();
    fn walk(stmts: &[Statement], out: &mut BTreeSet<String>) {
        for s in stmts {
            match s {
                Statement::Block(b) => walk(b, out),
                Statement::Inst(i) => {
                    let mut f = i.opcode.clone();
                    for md in &i.mods {
                        f.push('.');
                        f.push_str(md);
                    }
                    out.insert(f);
                }
                _ => {}
            }
        }
    }
    for f in &m.functions {
        if let Some(b) = &f.body {
            walk(b, &mut out);
        }
    }
    Ok(out)
}

/// Every instruction the decoder rejects, as (line, text). A parse error is reported as one
/// entry with its line and message.
pub fn unsupported(ptx: &str) -> Vec<(u32, String)> {
    let m = match crate::ptx::parse(ptx) {
        Ok(m) => m,
        Err(e) => return vec![(e.line, format!("parse error: {}", e.message))],
    };
    // Fake addresses for module variables (decoding only needs them to exist).
    let mut globals = HashMap::new();
    let mut next = crate::mem::HEAP_BASE;
    for v in &m.vars {
        if matches!(v.space, StateSpace::Global | StateSpace::Const) {
            globals.insert(v.name.clone(), next);
            next += (v.size().max(1) + 255) / 256 * 256 + crate::mem::GUARD;
        }
    }
    let env = ModuleEnv { ast: &m, globals: &globals };
    decode::unsupported_insts(&env).into_iter().map(|(l, t, _)| (l, t)).collect()
}
