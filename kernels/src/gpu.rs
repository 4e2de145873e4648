//! `Gpu`: a launcher plus the embedded modules it has loaded, and `Buf`, a device buffer that
//! frees itself. Kernel wrappers in `ops` take a `&Gpu`.
//!
//! On a real GPU, freed buffers go back to a per-size free list (the workspace arena): a model
//! step allocates the same shapes every step, and `cuMemFree` would synchronise the device. The
//! emulator frees for real, so a fresh buffer always reads as poison there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::emu_launcher::EmuLauncher;
use crate::launch::{DevPtr, GpuError, KernelArg, LaunchCfg, Launcher, ModuleId};
use crate::ptx::PtxModule;

#[derive(Clone)]
pub struct Gpu {
    mem: Arc<Memory>,
    modules: Arc<Mutex<HashMap<&'static str, ModuleId>>>,
}

/// Bytes of freed buffers a GPU keeps for reuse.
pub const ARENA_BYTES: usize = 4 << 30;

/// A launcher's memory, with the optional free lists.
struct Memory {
    launcher: Arc<dyn Launcher>,
    pool: Option<Mutex<Pool>>,
}

struct Pool {
    /// Exact byte size -> free allocations of that size.
    free: HashMap<usize, Vec<DevPtr>>,
    cached: usize,
    cap: usize,
}

impl Memory {
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        if let Some(pool) = &self.pool {
            let mut p = pool.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(ptr) = p.free.get_mut(&bytes).and_then(Vec::pop) {
                p.cached -= bytes;
                return Ok(ptr);
            }
        }
        self.launcher.alloc(bytes)
    }

    fn release(&self, ptr: DevPtr, bytes: usize) {
        if let Some(pool) = &self.pool {
            let mut p = pool.lock().unwrap_or_else(|e| e.into_inner());
            if p.cached + bytes <= p.cap {
                p.free.entry(bytes).or_default().push(ptr);
                p.cached += bytes;
                return;
            }
        }
        let _ = self.launcher.free(ptr);
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            let p = pool.lock().unwrap_or_else(|e| e.into_inner());
            for ptr in p.free.values().flatten() {
                let _ = self.launcher.free(*ptr);
            }
        }
    }
}

impl Gpu {
    /// A launcher whose buffers are freed when dropped.
    pub fn new(launcher: Arc<dyn Launcher>) -> Gpu {
        Gpu { mem: Arc::new(Memory { launcher, pool: None }), modules: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// A launcher whose dropped buffers are kept for reuse by size, up to `cap` bytes.
    pub fn with_arena(launcher: Arc<dyn Launcher>, cap: usize) -> Gpu {
        let pool = Pool { free: HashMap::new(), cached: 0, cap };
        Gpu { mem: Arc::new(Memory { launcher, pool: Some(Mutex::new(pool)) }), modules: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Bytes held in the arena's free lists.
    pub fn arena_cached(&self) -> usize {
        self.mem.pool.as_ref().map_or(0, |p| p.lock().unwrap_or_else(|e| e.into_inner()).cached)
    }

    /// A GPU on the PTX emulator.
    pub fn emu() -> Gpu {
        Gpu::new(Arc::new(EmuLauncher::new()))
    }

    /// CUDA device `ordinal` through cudarc; an error (never a panic) when there is no driver,
    /// no device, or the device is not sm_90.
    pub fn cuda(ordinal: usize) -> Result<Gpu, GpuError> {
        Ok(Gpu::with_arena(Arc::new(crate::cuda_launcher::CudaLauncher::new(ordinal)?), ARENA_BYTES))
    }

    /// The device the kernel tests run on: the emulator, or the GPU when `DSV4_TEST_DEVICE=cuda`
    /// (scripts/gpu-check.sh runs every test binary both ways and compares).
    pub fn for_tests() -> Gpu {
        match std::env::var("DSV4_TEST_DEVICE").as_deref() {
            Ok("cuda") => Gpu::cuda(0).unwrap_or_else(|e| panic!("DSV4_TEST_DEVICE=cuda but no usable GPU: {e}")),
            Ok("emu") | Err(_) => Gpu::emu(),
            Ok(other) => panic!("DSV4_TEST_DEVICE={other:?}: expected cuda or emu"),
        }
    }

    pub fn launcher(&self) -> &dyn Launcher {
        &*self.mem.launcher
    }

    pub fn name(&self) -> String {
        self.mem.launcher.name()
    }

    /// Launch `kernel` of an embedded module, loading the module on first use.
    pub fn launch(&self, module: &'static PtxModule, kernel: &str, cfg: LaunchCfg, args: &[KernelArg]) -> Result<(), GpuError> {
        let id = {
            let mut mods = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            match mods.get(module.name) {
                Some(id) => *id,
                None => {
                    let id = self.mem.launcher.load_module(module.name, module.src)?;
                    mods.insert(module.name, id);
                    id
                }
            }
        };
        self.mem.launcher.launch(id, kernel, &cfg, args).map_err(|e| GpuError(format!("{}::{kernel}: {e}", module.name)))
    }

    /// An uninitialised buffer of `bytes` (on the emulator it reads as poison).
    pub fn alloc(&self, bytes: usize) -> Result<Buf, GpuError> {
        let ptr = self.mem.alloc(bytes.max(1))?;
        Ok(Buf { ptr, bytes, mem: self.mem.clone() })
    }

    /// A buffer filled with 0xFF bytes: NaN as f32/bf16/f16/e4m3, so an output element a kernel
    /// forgets to write shows up in the tests.
    pub fn alloc_poisoned(&self, bytes: usize) -> Result<Buf, GpuError> {
        let b = self.alloc(bytes)?;
        self.mem.launcher.memset(b.ptr, 0xFF, bytes)?;
        Ok(b)
    }

    pub fn zeros(&self, bytes: usize) -> Result<Buf, GpuError> {
        let b = self.alloc(bytes)?;
        self.mem.launcher.memset(b.ptr, 0, bytes)?;
        Ok(b)
    }

    pub fn upload_bytes(&self, data: &[u8]) -> Result<Buf, GpuError> {
        let b = self.alloc(data.len())?;
        if !data.is_empty() {
            self.mem.launcher.htod(b.ptr, data)?;
        }
        Ok(b)
    }

    pub fn upload_f32(&self, data: &[f32]) -> Result<Buf, GpuError> {
        self.upload_bytes(&f32_bytes(data))
    }

    pub fn upload_u32(&self, data: &[u32]) -> Result<Buf, GpuError> {
        self.upload_bytes(&data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
    }

    pub fn upload_i32(&self, data: &[i32]) -> Result<Buf, GpuError> {
        self.upload_bytes(&data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
    }

    pub fn synchronize(&self) -> Result<(), GpuError> {
        self.mem.launcher.synchronize()
    }
}

pub fn f32_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An owned device allocation.
pub struct Buf {
    ptr: DevPtr,
    bytes: usize,
    mem: Arc<Memory>,
}

impl Buf {
    pub fn ptr(&self) -> DevPtr {
        self.ptr
    }
    /// As a kernel argument.
    pub fn arg(&self) -> KernelArg {
        KernelArg::Ptr(self.ptr)
    }
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    pub fn download_bytes(&self) -> Result<Vec<u8>, GpuError> {
        let mut out = vec![0u8; self.bytes];
        if self.bytes > 0 {
            self.mem.launcher.dtoh(self.ptr, &mut out)?;
        }
        Ok(out)
    }
    pub fn download_f32(&self) -> Result<Vec<f32>, GpuError> {
        Ok(self.download_bytes()?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    pub fn download_u32(&self) -> Result<Vec<u32>, GpuError> {
        Ok(self.download_bytes()?.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    pub fn download_i32(&self) -> Result<Vec<i32>, GpuError> {
        Ok(self.download_bytes()?.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    /// Overwrite the whole buffer from the host.
    pub fn write_bytes(&self, data: &[u8]) -> Result<(), GpuError> {
        if data.len() != self.bytes {
            return Err(GpuError(format!("write of {} bytes into a buffer of {}", data.len(), self.bytes)));
        }
        self.mem.launcher.htod(self.ptr, data)
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        self.mem.release(self.ptr, self.bytes.max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arena_reuses_buffers_of_the_same_size_up_to_its_cap() {
        let gpu = Gpu::with_arena(Arc::new(EmuLauncher::new()), 1000);
        let a = gpu.upload_f32(&[1.0; 100]).unwrap();
        let pa = a.ptr();
        drop(a);
        assert_eq!(gpu.arena_cached(), 400);
        let b = gpu.alloc(400).unwrap();
        assert_eq!(b.ptr(), pa, "same size: reused");
        assert_eq!(gpu.arena_cached(), 0);
        let c = gpu.alloc(404).unwrap();
        assert_ne!(c.ptr(), pa, "another size: a new allocation");
        drop((b, c));
        assert_eq!(gpu.arena_cached(), 804);
        drop(gpu.alloc(800).unwrap()); // over the cap: freed for real
        assert_eq!(gpu.arena_cached(), 804);
        // Without an arena a dropped buffer is freed: reading through its address faults.
        let plain = Gpu::emu();
        let d = plain.alloc(16).unwrap();
        let pd = d.ptr();
        drop(d);
        let mut out = [0u8; 16];
        assert!(plain.launcher().dtoh(pd, &mut out).is_err());
    }
}
