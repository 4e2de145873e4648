//! `Launcher` on the PTX emulator: the CPU runs the exact PTX a GPU would.

use std::sync::Mutex;

use dsv4_emu::{ArgValue, Device, LaunchConfig, LaunchStats, ModuleHandle, Schedule};

use crate::launch::{DevPtr, GpuError, KernelArg, LaunchCfg, Launcher, ModuleId};

pub struct EmuLauncher {
    inner: Mutex<Inner>,
}

struct Inner {
    dev: Device,
    modules: Vec<ModuleHandle>,
    last: Option<LaunchStats>,
}

impl EmuLauncher {
    /// A fresh emulated device with the race detector on and a fuzzed warp schedule: the seed
    /// is `DSV4_EMU_SEED` when set, else derived from the time. Launches are deterministic for
    /// a seed; a failing launch's error says "schedule seed N" (replay with
    /// `DSV4_EMU_SEED=N`), and the seed is in `name()` and on stderr (shown by the test
    /// harness for a failing test) for result mismatches.
    pub fn new() -> EmuLauncher {
        let seed = std::env::var("DSV4_EMU_SEED").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            (t.as_nanos() as u64 ^ (std::process::id() as u64).rotate_left(32)) % 1_000_000_007
        });
        EmuLauncher::with_schedule(Schedule::Fuzz { seed })
    }

    /// A device with an explicit schedule (`Schedule::Fixed` for the plain round-robin order).
    pub fn with_schedule(schedule: Schedule) -> EmuLauncher {
        let mut dev = Device::new();
        dev.set_schedule(schedule);
        if let Schedule::Fuzz { seed } = schedule {
            eprintln!("dsv4-emu: schedule seed {seed} (replay with DSV4_EMU_SEED={seed})");
        }
        EmuLauncher { inner: Mutex::new(Inner { dev, modules: Vec::new(), last: None }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the device as consistent as the emulator left it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for EmuLauncher {
    fn default() -> Self {
        EmuLauncher::new()
    }
}

fn arg_value(a: &KernelArg) -> ArgValue {
    match a {
        KernelArg::Ptr(p) => ArgValue::U64(*p),
        KernelArg::U32(v) => ArgValue::U32(*v),
        KernelArg::I32(v) => ArgValue::I32(*v),
        KernelArg::U64(v) => ArgValue::U64(*v),
        KernelArg::I64(v) => ArgValue::I64(*v),
        KernelArg::F32(v) => ArgValue::F32(*v),
        KernelArg::F64(v) => ArgValue::F64(*v),
        KernelArg::Bytes(b) => ArgValue::Bytes(b.clone()),
    }
}

impl Launcher for EmuLauncher {
    fn name(&self) -> String {
        match self.lock().dev.schedule() {
            Schedule::Fuzz { seed } => format!("emu (PTX emulator on the CPU, schedule seed {seed})"),
            Schedule::Fixed => "emu (PTX emulator on the CPU)".into(),
        }
    }
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        Ok(self.lock().dev.alloc(bytes)?)
    }
    fn free(&self, ptr: DevPtr) -> Result<(), GpuError> {
        Ok(self.lock().dev.free(ptr)?)
    }
    fn htod(&self, dst: DevPtr, src: &[u8]) -> Result<(), GpuError> {
        Ok(self.lock().dev.write(dst, src)?)
    }
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError> {
        Ok(self.lock().dev.read(src, dst)?)
    }
    fn memset(&self, dst: DevPtr, byte: u8, len: usize) -> Result<(), GpuError> {
        Ok(self.lock().dev.memset(dst, byte, len)?)
    }
    fn load_module(&self, name: &str, ptx: &str) -> Result<ModuleId, GpuError> {
        let mut g = self.lock();
        let h = g.dev.load_module(name, ptx)?;
        g.modules.push(h);
        Ok(ModuleId(g.modules.len() - 1))
    }
    fn launch(&self, m: ModuleId, kernel: &str, cfg: &LaunchCfg, args: &[KernelArg]) -> Result<(), GpuError> {
        let mut g = self.lock();
        let h = *g.modules.get(m.0).ok_or_else(|| GpuError(format!("unknown module {m:?}")))?;
        let args: Vec<ArgValue> = args.iter().map(arg_value).collect();
        let lc = LaunchConfig { grid: cfg.grid, block: cfg.block, dynamic_smem: cfg.shared };
        let stats = g.dev.launch(h, kernel, &lc, &args)?;
        g.last = Some(stats);
        Ok(())
    }
    fn synchronize(&self) -> Result<(), GpuError> {
        Ok(())
    }
    fn encode_tensor_map(&self, desc: &crate::launch::TensorMapDesc) -> Result<[u8; 128], GpuError> {
        Ok(dsv4_emu::encode_tensor_map(desc)?)
    }
    fn last_stats(&self) -> Option<LaunchStats> {
        self.lock().last.clone()
    }
}
