//! `Device`: the emulated GPU. Allocations, copies, modules and launches.
use std::collections::HashMap;

use crate::api::*;
use crate::decode::{self, Kernel, ModuleEnv};
use crate::exec;
use crate::mem::GlobalMem;
use crate::ptx::ast::{Operand, StateSpace};

/// A loaded module (parsed and decoded once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModuleHandle(pub usize);

/// Shared memory per CTA the driver allows on sm_90 (227 KiB). More than 48 KiB of dynamic
/// shared memory needs `cudaFuncAttributeMaxDynamicSharedMemorySize` on hardware; the emulator
/// allows it (the CUDA launcher sets the attribute).
pub const MAX_SMEM: u32 = 232_448;

struct LoadedModule {
    name: String,
    kernels: Vec<Kernel>,
}

pub struct Device {
    g: GlobalMem,
    modules: Vec<LoadedModule>,
    budget: u64,
    race_check: bool,
    schedule: exec::schedule::Schedule,
}

impl Default for Device {
    fn default() -> Self {
        Device::new()
    }
}

fn launch_err(msg: String) -> EmuError {
    EmuError::new(ErrorKind::Launch, msg)
}

impl Device {
    pub fn new() -> Device {
        let schedule = match std::env::var("DSV4_EMU_SEED").ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(seed) => exec::schedule::Schedule::Fuzz { seed },
            None => exec::schedule::Schedule::Fixed,
        };
        // DSV4_EMU_RACE=0 turns the race detector off (e.g. to time it).
        let race_check = std::env::var("DSV4_EMU_RACE").map_or(true, |v| v.trim() != "0");
        Device { g: GlobalMem::new(), modules: Vec::new(), budget: exec::DEFAULT_BUDGET, race_check, schedule }
    }

    /// Shared-memory race detection (default on): a launch fails on two unordered accesses to
    /// one shared word by different warps, at least one a non-atomic write.
    pub fn set_race_check(&mut self, on: bool) {
        self.race_check = on;
    }

    /// Warp scheduling: `Fixed` (default) or seeded `Fuzz` (warp order, quantum, elected lane).
    /// `Device::new()` picks `Fuzz { seed: N }` when `DSV4_EMU_SEED=N` is set.
    pub fn set_schedule(&mut self, s: exec::schedule::Schedule) {
        self.schedule = s;
    }

    pub fn schedule(&self) -> exec::schedule::Schedule {
        self.schedule
    }

    /// The per-launch thread-instruction budget (exceeding it is reported as a livelock).
    pub fn set_budget(&mut self, thread_insts: u64) {
        self.budget = thread_insts;
    }

    /// A fresh global allocation of `bytes` (> 0), 256-byte aligned, at a high address with guard
    /// gaps around it; its contents start poisoned (0xFF).
    pub fn alloc(&mut self, bytes: usize) -> Result<u64, EmuError> {
        if bytes == 0 {
            return Err(launch_err("alloc of 0 bytes".into()));
        }
        if bytes > (1usize << 36) {
            return Err(launch_err(format!("alloc of {bytes} bytes is too large for the emulator")));
        }
        Ok(self.g.alloc(bytes))
    }

    pub fn free(&mut self, ptr: u64) -> Result<(), EmuError> {
        if self.g.free(ptr) {
            Ok(())
        } else {
            Err(launch_err(format!("free of {ptr:#x}, which is not the start of a live allocation")))
        }
    }

    /// Copy host bytes to `[ptr, ptr + data.len())`, which must lie inside one live allocation.
    pub fn write(&mut self, ptr: u64, data: &[u8]) -> Result<(), EmuError> {
        if data.is_empty() {
            return Ok(());
        }
        match self.g.slice_mut(ptr, data.len()) {
            Some(s) => {
                s.copy_from_slice(data);
                Ok(())
            }
            None => Err(EmuError::new(
                ErrorKind::Memory,
                format!("host write of {} bytes at {ptr:#x} is out of bounds; {}", data.len(), self.g.describe(ptr)),
            )),
        }
    }

    pub fn read(&self, ptr: u64, out: &mut [u8]) -> Result<(), EmuError> {
        if out.is_empty() {
            return Ok(());
        }
        match self.g.slice(ptr, out.len()) {
            Some(s) => {
                out.copy_from_slice(s);
                Ok(())
            }
            None => Err(EmuError::new(
                ErrorKind::Memory,
                format!("host read of {} bytes at {ptr:#x} is out of bounds; {}", out.len(), self.g.describe(ptr)),
            )),
        }
    }

    pub fn memset(&mut self, ptr: u64, byte: u8, len: usize) -> Result<(), EmuError> {
        if len == 0 {
            return Ok(());
        }
        match self.g.slice_mut(ptr, len) {
            Some(s) => {
                s.fill(byte);
                Ok(())
            }
            None => Err(EmuError::new(
                ErrorKind::Memory,
                format!("memset of {len} bytes at {ptr:#x} is out of bounds; {}", self.g.describe(ptr)),
            )),
        }
    }

    /// Parse and decode `ptx` (every kernel in it); `name` appears in error messages.
    pub fn load_module(&mut self, name: &str, ptx: &str) -> Result<ModuleHandle, EmuError> {
        let ast = crate::ptx::parse(ptx)
            .map_err(|e| EmuError::new(ErrorKind::Parse, format!("module {name}: line {}: {}", e.line, e.message)))?;
        if ast.version.0 > 9 {
            return Err(EmuError::new(
                ErrorKind::Unsupported,
                format!("module {name}: PTX ISA {}.{} is newer than 9.x", ast.version.0, ast.version.1),
            ));
        }
        // Module-scope .global/.const variables live in the global heap (zero-initialised, as
        // static storage is).
        let mut globals = HashMap::new();
        for v in &ast.vars {
            if !matches!(v.space, StateSpace::Global | StateSpace::Const) {
                continue;
            }
            if v.is_extern {
                return Err(EmuError::new(
                    ErrorKind::Unsupported,
                    format!("module {name}: line {}: extern .global variable `{}`", v.line, v.name),
                ));
            }
            let size = v.size().max(1) as usize;
            let ptr = self.g.alloc(size);
            let mut bytes = vec![0u8; size];
            if let Some(init) = &v.init {
                let es = v.ty.size() as usize;
                for (i, e) in init.iter().enumerate() {
                    let val: u64 = match e {
                        Operand::Int(x) => *x as u64,
                        Operand::F32(b) => *b as u64,
                        Operand::F64(b) => *b,
                        _ => {
                            return Err(EmuError::new(
                                ErrorKind::Unsupported,
                                format!("module {name}: line {}: initialiser {e:?} of `{}`", v.line, v.name),
                            ))
                        }
                    };
                    let o = i * es;
                    if o + es <= size {
                        bytes[o..o + es].copy_from_slice(&val.to_le_bytes()[..es.min(8)]);
                    }
                }
            }
            self.g.slice_mut(ptr, size).unwrap().copy_from_slice(&bytes);
            globals.insert(v.name.clone(), ptr);
        }
        let env = ModuleEnv { ast: &ast, globals: &globals };
        let kernels = decode::decode_module(&env)
            .map_err(|e| EmuError::new(e.kind, format!("module {name}: {}", e.message)))?;
        self.modules.push(LoadedModule { name: name.to_string(), kernels });
        Ok(ModuleHandle(self.modules.len() - 1))
    }

    /// The `.entry` kernels of a module.
    pub fn kernels(&self, m: ModuleHandle) -> Vec<String> {
        self.modules.get(m.0).map(|md| md.kernels.iter().map(|k| k.name.clone()).collect()).unwrap_or_default()
    }

    fn kernel(&self, m: ModuleHandle, kernel: &str) -> Result<&Kernel, EmuError> {
        let md = self.modules.get(m.0).ok_or_else(|| launch_err(format!("unknown module handle {}", m.0)))?;
        md.kernels.iter().find(|k| k.name == kernel).ok_or_else(|| {
            launch_err(format!(
                "unknown kernel `{kernel}` in module {} (kernels: {})",
                md.name,
                md.kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    pub fn params(&self, m: ModuleHandle, kernel: &str) -> Result<Vec<ParamInfo>, EmuError> {
        let k = self.kernel(m, kernel)?;
        Ok(k.params.iter().map(|p| ParamInfo { name: p.name.clone(), size: p.size, align: p.align }).collect())
    }

    /// Run a kernel to completion. Arguments are checked against the kernel's `.param` list
    /// (count, size); limits as the driver checks them. Returns the launch's counters.
    pub fn launch(&mut self, m: ModuleHandle, kernel: &str, cfg: &LaunchConfig, args: &[ArgValue]) -> Result<LaunchStats, EmuError> {
        let budget = self.budget;
        self.kernel(m, kernel)?;
        let Device { g, modules, .. } = self;
        let md = &modules[m.0];
        let k = md.kernels.iter().find(|k| k.name == kernel).unwrap();
        let name = &k.name;
        if args.len() != k.params.len() {
            return Err(launch_err(format!(
                "kernel {name} expects {} arguments ({}), got {}",
                k.params.len(),
                k.params.iter().map(|p| format!("{}: {} bytes", p.name, p.size)).collect::<Vec<_>>().join(", "),
                args.len()
            )));
        }
        let mut params = vec![0u8; k.param_size as usize];
        for (i, (p, a)) in k.params.iter().zip(args).enumerate() {
            let b = a.bytes();
            if b.len() != p.size as usize {
                return Err(launch_err(format!(
                    "kernel {name} parameter #{i} `{}` is {} bytes, but the argument {:?} is {} bytes",
                    p.name,
                    p.size,
                    short(a),
                    b.len()
                )));
            }
            params[p.offset as usize..p.offset as usize + b.len()].copy_from_slice(&b);
        }
        let [bx, by, bz] = cfg.block;
        let threads = bx as u64 * by as u64 * bz as u64;
        if bx == 0 || by == 0 || bz == 0 || bx > 1024 || by > 1024 || bz > 64 || threads > 1024 {
            return Err(launch_err(format!(
                "kernel {name}: block ({bx},{by},{bz}) exceeds the limits (x,y <= 1024, z <= 64, x*y*z <= 1024, all > 0)"
            )));
        }
        let [gx, gy, gz] = cfg.grid;
        if gx == 0 || gy == 0 || gz == 0 || gx > i32::MAX as u32 || gy > 65535 || gz > 65535 {
            return Err(launch_err(format!(
                "kernel {name}: grid ({gx},{gy},{gz}) exceeds the limits (x < 2^31, y,z <= 65535, all > 0)"
            )));
        }
        if let Some(mx) = k.maxntid {
            let lim = mx[0] as u64 * mx[1] as u64 * mx[2] as u64;
            if threads > lim || bx > mx[0] && mx[1] == 1 && mx[2] == 1 && by == 1 && bz == 1 {
                return Err(launch_err(format!(
                    "kernel {name}: block ({bx},{by},{bz}) has {threads} threads, more than .maxntid {},{},{}",
                    mx[0], mx[1], mx[2]
                )));
            }
        }
        if let Some(rq) = k.reqntid {
            if rq != cfg.block {
                return Err(launch_err(format!(
                    "kernel {name}: block ({bx},{by},{bz}) differs from .reqntid {},{},{}",
                    rq[0], rq[1], rq[2]
                )));
            }
        }
        let smem = k.dyn_smem_offset as u64 + cfg.dynamic_smem as u64;
        if smem > MAX_SMEM as u64 {
            return Err(launch_err(format!(
                "kernel {name}: {} bytes static + {} bytes dynamic shared memory exceed {} bytes per CTA",
                k.static_smem, cfg.dynamic_smem, MAX_SMEM
            )));
        }
        let schedule = self.schedule;
        exec::run(exec::Launch {
            k,
            g,
            params: &params,
            grid: cfg.grid,
            block: cfg.block,
            dyn_smem: cfg.dynamic_smem,
            budget,
            race_check: self.race_check,
            schedule,
        })
        .map_err(|mut e| {
            if let Some(seed) = schedule.seed() {
                e.message.push_str(&format!(" (schedule seed {seed}; replay with DSV4_EMU_SEED={seed})"));
            }
            e
        })
    }
}

fn short(a: &ArgValue) -> String {
    match a {
        ArgValue::Bytes(b) => format!("Bytes([{} bytes])", b.len()),
        x => format!("{x:?}"),
    }
}
