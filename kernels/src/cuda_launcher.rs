//! `Launcher` on a real GPU through cudarc (driver API loaded at run time, so the build needs
//! no CUDA). The embedded PTX is JIT-compiled by the driver (`cuModuleLoadData`); launches go
//! to the legacy null stream, so they and the synchronous copies run in order.

use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex};

use cudarc::driver::{result, sys, CudaContext};

use crate::launch::{DevPtr, GpuError, KernelArg, LaunchCfg, Launcher, ModuleId};

pub struct CudaLauncher {
    ctx: Arc<CudaContext>,
    name: String,
    /// Loaded modules (raw handles: kept for the process lifetime).
    modules: Mutex<Vec<Module>>,
    /// Pinned host memory large copies go through (weights from the memory map: DMA from
    /// pinned memory runs at full PCIe speed, pageable memory at about half).
    staging: Mutex<Option<Staging>>,
}

/// Copies at least this large use the pinned staging buffer.
const STAGING_MIN: usize = 1 << 20;
const STAGING_BYTES: usize = 64 << 20;

struct Staging {
    ptr: *mut u8,
}

// Pinned host memory owned by the launcher; used under its mutex only.
unsafe impl Send for Staging {}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = unsafe { result::free_host(self.ptr as *mut c_void) };
    }
}

struct Module {
    name: String,
    handle: sys::CUmodule,
    functions: Vec<(String, sys::CUfunction)>,
}

// The raw handles are plain driver identifiers, usable from any thread with the context bound.
unsafe impl Send for Module {}

fn err(what: &str, e: impl std::fmt::Debug) -> GpuError {
    GpuError(format!("{what}: {e:?}"))
}

/// The context and name of device `ordinal` when it is an sm_90 GPU we can drive, else why not.
/// Never panics: cudarc panics when libcuda is absent, so that is checked first.
pub fn probe(ordinal: usize) -> Result<(Arc<CudaContext>, String), String> {
    if !unsafe { sys::is_culib_present() } {
        return Err("no CUDA driver (libcuda.so) found".into());
    }
    let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
        .map_err(|_| "the CUDA driver lacks a symbol cudarc needs (driver too old?)".to_string())?
        .map_err(|e| format!("CUDA device {ordinal}: {e:?}"))?;
    let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
    let (major, minor) = ctx.compute_capability().map_err(|e| format!("{e:?}"))?;
    if (major, minor) != (9, 0) {
        return Err(format!("{name} is sm_{major}{minor}; our kernels need sm_90 (H100/H200)"));
    }
    Ok((ctx, format!("cuda ({name}, sm_90)")))
}

impl CudaLauncher {
    pub fn new(ordinal: usize) -> Result<CudaLauncher, GpuError> {
        let (ctx, name) = probe(ordinal).map_err(GpuError)?;
        Ok(CudaLauncher { ctx, name, modules: Mutex::new(Vec::new()), staging: Mutex::new(None) })
    }

    fn bind(&self) -> Result<(), GpuError> {
        self.ctx.bind_to_thread().map_err(|e| err("binding the CUDA context", e))
    }
}

impl Launcher for CudaLauncher {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        self.bind()?;
        unsafe { result::malloc_sync(bytes.max(1)) }.map_err(|e| err(&format!("allocating {bytes} bytes"), e))
    }
    fn free(&self, ptr: DevPtr) -> Result<(), GpuError> {
        self.bind()?;
        unsafe { result::free_sync(ptr) }.map_err(|e| err("cuMemFree", e))
    }
    fn htod(&self, dst: DevPtr, src: &[u8]) -> Result<(), GpuError> {
        self.bind()?;
        let mut staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        if src.len() >= STAGING_MIN && staging.is_none() {
            // No pinned memory to be had: copy from pageable memory instead.
            if let Ok(ptr) = unsafe { result::malloc_host(STAGING_BYTES, 0) } {
                *staging = Some(Staging { ptr: ptr as *mut u8 });
            }
        }
        match staging.as_ref() {
            Some(st) if src.len() >= STAGING_MIN => {
                let pinned = unsafe { std::slice::from_raw_parts_mut(st.ptr, STAGING_BYTES) };
                for (i, chunk) in src.chunks(STAGING_BYTES).enumerate() {
                    pinned[..chunk.len()].copy_from_slice(chunk);
                    let at = dst + (i * STAGING_BYTES) as u64;
                    unsafe { result::memcpy_htod_sync(at, &pinned[..chunk.len()]) }.map_err(|e| err("copy to device", e))?;
                }
                Ok(())
            }
            _ => unsafe { result::memcpy_htod_sync(dst, src) }.map_err(|e| err("copy to device", e)),
        }
    }
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError> {
        self.bind()?;
        unsafe { result::memcpy_dtoh_sync(dst, src) }.map_err(|e| err("copy to host", e))
    }
    fn memset(&self, dst: DevPtr, byte: u8, len: usize) -> Result<(), GpuError> {
        self.bind()?;
        unsafe { result::memset_d8_sync(dst, byte, len) }.map_err(|e| err("memset", e))
    }
    fn load_module(&self, name: &str, ptx: &str) -> Result<ModuleId, GpuError> {
        self.bind()?;
        let text = CString::new(ptx).map_err(|_| GpuError(format!("module {name}: PTX holds a NUL byte")))?;
        let handle = unsafe { result::module::load_data(text.as_ptr() as *const c_void) }.map_err(|e| err(&format!("JIT of module {name}"), e))?;
        let mut mods = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        mods.push(Module { name: name.to_string(), handle, functions: Vec::new() });
        Ok(ModuleId(mods.len() - 1))
    }
    fn launch(&self, m: ModuleId, kernel: &str, cfg: &LaunchCfg, args: &[KernelArg]) -> Result<(), GpuError> {
        self.bind()?;
        let f = {
            let mut mods = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            let module = mods.get_mut(m.0).ok_or_else(|| GpuError(format!("unknown module {m:?}")))?;
            match module.functions.iter().find(|(n, _)| n == kernel) {
                Some((_, f)) => *f,
                None => {
                    let cname = CString::new(kernel).map_err(|_| GpuError("kernel name holds a NUL byte".into()))?;
                    let f = unsafe { result::module::get_function(module.handle, cname) }.map_err(|e| err(&format!("kernel {kernel} in module {}", module.name), e))?;
                    if cfg.shared > 48 * 1024 {
                        unsafe {
                            result::function::set_function_attribute(f, sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, cfg.shared as i32)
                        }
                        .map_err(|e| err("raising the dynamic shared memory limit", e))?;
                    }
                    module.functions.push((kernel.to_string(), f));
                    f
                }
            }
        };
        // Each argument's bytes live in `storage`; the driver reads them through `ptrs`.
        let mut storage: Vec<Vec<u8>> = args
            .iter()
            .map(|a| match a {
                KernelArg::Ptr(p) | KernelArg::U64(p) => p.to_le_bytes().to_vec(),
                KernelArg::U32(v) => v.to_le_bytes().to_vec(),
                KernelArg::I32(v) => v.to_le_bytes().to_vec(),
                KernelArg::I64(v) => v.to_le_bytes().to_vec(),
                KernelArg::F32(v) => v.to_le_bytes().to_vec(),
                KernelArg::F64(v) => v.to_le_bytes().to_vec(),
                KernelArg::Bytes(b) => b.clone(),
            })
            .collect();
        let mut ptrs: Vec<*mut c_void> = storage.iter_mut().map(|s| s.as_mut_ptr() as *mut c_void).collect();
        let g = (cfg.grid[0], cfg.grid[1], cfg.grid[2]);
        let b = (cfg.block[0], cfg.block[1], cfg.block[2]);
        // The legacy null stream: ordered with the synchronous copies above and every launch.
        unsafe { result::launch_kernel(f, g, b, cfg.shared, std::ptr::null_mut(), &mut ptrs) }.map_err(|e| err(&format!("launching {kernel}"), e))
    }
    fn synchronize(&self) -> Result<(), GpuError> {
        self.bind()?;
        result::ctx::synchronize().map_err(|e| err("synchronize (an earlier kernel faulted?)", e))
    }
    fn encode_tensor_map(&self, d: &crate::launch::TensorMapDesc) -> Result<[u8; 128], GpuError> {
        use crate::launch::{OobFill, Swizzle, TmapDtype};
        use sys::CUtensorMapDataType_enum as Dt;
        self.bind()?;
        let rank = d.dims.len();
        if !(1..=5).contains(&rank) || d.strides.len() + 1 != rank || d.box_dims.len() != rank || d.element_strides.len() != rank {
            return Err(GpuError(format!("cuTensorMapEncodeTiled: inconsistent ranks in {d:?}")));
        }
        let dtype = match d.dtype {
            TmapDtype::U8 => Dt::CU_TENSOR_MAP_DATA_TYPE_UINT8,
            TmapDtype::U16 => Dt::CU_TENSOR_MAP_DATA_TYPE_UINT16,
            TmapDtype::U32 => Dt::CU_TENSOR_MAP_DATA_TYPE_UINT32,
            TmapDtype::S32 => Dt::CU_TENSOR_MAP_DATA_TYPE_INT32,
            TmapDtype::U64 => Dt::CU_TENSOR_MAP_DATA_TYPE_UINT64,
            TmapDtype::S64 => Dt::CU_TENSOR_MAP_DATA_TYPE_INT64,
            TmapDtype::F16 => Dt::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
            TmapDtype::F32 => Dt::CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
            TmapDtype::F64 => Dt::CU_TENSOR_MAP_DATA_TYPE_FLOAT64,
            TmapDtype::Bf16 => Dt::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            TmapDtype::F32Ftz => Dt::CU_TENSOR_MAP_DATA_TYPE_FLOAT32_FTZ,
            TmapDtype::Tf32 => Dt::CU_TENSOR_MAP_DATA_TYPE_TFLOAT32,
            TmapDtype::Tf32Ftz => Dt::CU_TENSOR_MAP_DATA_TYPE_TFLOAT32_FTZ,
        };
        let swizzle = match d.swizzle {
            Swizzle::None => sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_NONE,
            Swizzle::B32 => sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_32B,
            Swizzle::B64 => sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_64B,
            Swizzle::B128 => sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_128B,
        };
        let fill = match d.oob_fill {
            OobFill::None => sys::CUtensorMapFloatOOBfill_enum::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
            OobFill::NanRequestZeroFma => sys::CUtensorMapFloatOOBfill_enum::CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA,
        };
        let dims: Vec<sys::cuuint64_t> = d.dims.iter().map(|&x| x as sys::cuuint64_t).collect();
        let strides: Vec<sys::cuuint64_t> = d.strides.iter().map(|&x| x as sys::cuuint64_t).collect();
        let boxd: Vec<sys::cuuint32_t> = d.box_dims.iter().map(|&x| x as sys::cuuint32_t).collect();
        let estr: Vec<sys::cuuint32_t> = d.element_strides.iter().map(|&x| x as sys::cuuint32_t).collect();
        let mut map = sys::CUtensorMap { opaque: [0; 16] };
        let r = unsafe {
            sys::cuTensorMapEncodeTiled(
                &mut map,
                dtype,
                rank as sys::cuuint32_t,
                d.global_address as *mut c_void,
                dims.as_ptr(),
                strides.as_ptr(),
                boxd.as_ptr(),
                estr.as_ptr(),
                sys::CUtensorMapInterleave_enum::CU_TENSOR_MAP_INTERLEAVE_NONE,
                swizzle,
                sys::CUtensorMapL2promotion_enum::CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                fill,
            )
        };
        if r != sys::CUresult::CUDA_SUCCESS {
            return Err(GpuError(format!("cuTensorMapEncodeTiled({d:?}): {r:?}")));
        }
        let mut out = [0u8; 128];
        for (i, w) in map.opaque.iter().enumerate() {
            out[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        Ok(out)
    }
}
