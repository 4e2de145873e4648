//! `Gpu`: a launcher plus the embedded modules it has loaded, and `Buf`, a device buffer that
//! frees itself. Kernel wrappers in `ops` take a `&Gpu`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::emu_launcher::EmuLauncher;
use crate::launch::{DevPtr, GpuError, KernelArg, LaunchCfg, Launcher, ModuleId};
use crate::ptx::PtxModule;

#[derive(Clone)]
pub struct Gpu {
    launcher: Arc<dyn Launcher>,
    modules: Arc<Mutex<HashMap<&'static str, ModuleId>>>,
}

impl Gpu {
    pub fn new(launcher: Arc<dyn Launcher>) -> Gpu {
        Gpu { launcher, modules: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// A GPU on the PTX emulator.
    pub fn emu() -> Gpu {
        Gpu::new(Arc::new(EmuLauncher::new()))
    }

    /// CUDA device `ordinal` through cudarc; an error (never a panic) when there is no driver,
    /// no device, or the device is not sm_90.
    pub fn cuda(ordinal: usize) -> Result<Gpu, GpuError> {
        Ok(Gpu::new(Arc::new(crate::cuda_launcher::CudaLauncher::new(ordinal)?)))
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
        &*self.launcher
    }

    pub fn name(&self) -> String {
        self.launcher.name()
    }

    /// Launch `kernel` of an embedded module, loading the module on first use.
    pub fn launch(&self, module: &'static PtxModule, kernel: &str, cfg: LaunchCfg, args: &[KernelArg]) -> Result<(), GpuError> {
        let id = {
            let mut mods = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            match mods.get(module.name) {
                Some(id) => *id,
                None => {
                    let id = self.launcher.load_module(module.name, module.src)?;
                    mods.insert(module.name, id);
                    id
                }
            }
        };
        self.launcher.launch(id, kernel, &cfg, args).map_err(|e| GpuError(format!("{}::{kernel}: {e}", module.name)))
    }

    /// An uninitialised buffer of `bytes` (on the emulator it reads as poison).
    pub fn alloc(&self, bytes: usize) -> Result<Buf, GpuError> {
        let ptr = self.launcher.alloc(bytes.max(1))?;
        Ok(Buf { ptr, bytes, launcher: self.launcher.clone() })
    }

    /// A buffer filled with 0xFF bytes: NaN as f32/bf16/f16/e4m3, so an output element a kernel
    /// forgets to write shows up in the tests.
    pub fn alloc_poisoned(&self, bytes: usize) -> Result<Buf, GpuError> {
        let b = self.alloc(bytes)?;
        self.launcher.memset(b.ptr, 0xFF, bytes)?;
        Ok(b)
    }

    pub fn zeros(&self, bytes: usize) -> Result<Buf, GpuError> {
        let b = self.alloc(bytes)?;
        self.launcher.memset(b.ptr, 0, bytes)?;
        Ok(b)
    }

    pub fn upload_bytes(&self, data: &[u8]) -> Result<Buf, GpuError> {
        let b = self.alloc(data.len())?;
        if !data.is_empty() {
            self.launcher.htod(b.ptr, data)?;
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
        self.launcher.synchronize()
    }
}

pub fn f32_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An owned device allocation.
pub struct Buf {
    ptr: DevPtr,
    bytes: usize,
    launcher: Arc<dyn Launcher>,
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
            self.launcher.dtoh(self.ptr, &mut out)?;
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
        self.launcher.htod(self.ptr, data)
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let _ = self.launcher.free(self.ptr);
    }
}
