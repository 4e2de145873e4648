//! `Device`: the emulated GPU. Allocations, copies, modules and launches.
//!
//! STUB: the signatures are the contract; the executor replaces the bodies.
use crate::api::*;

/// A loaded module (parsed and decoded once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModuleHandle(pub usize);

#[derive(Default)]
pub struct Device {
    _private: (),
}

fn todo_err() -> EmuError {
    EmuError::new(ErrorKind::Unsupported, "emulator not built yet")
}

impl Device {
    pub fn new() -> Device {
        Device::default()
    }
    /// A fresh global allocation of `bytes` (> 0), 256-byte aligned, at a high address with guard
    /// gaps around it; its contents start poisoned (0xFF).
    pub fn alloc(&mut self, bytes: usize) -> Result<u64, EmuError> {
        let _ = bytes;
        Err(todo_err())
    }
    pub fn free(&mut self, ptr: u64) -> Result<(), EmuError> {
        let _ = ptr;
        Err(todo_err())
    }
    /// Copy host bytes to `[ptr, ptr + data.len())`, which must lie inside one live allocation.
    pub fn write(&mut self, ptr: u64, data: &[u8]) -> Result<(), EmuError> {
        let _ = (ptr, data);
        Err(todo_err())
    }
    pub fn read(&self, ptr: u64, out: &mut [u8]) -> Result<(), EmuError> {
        let _ = (ptr, out);
        Err(todo_err())
    }
    pub fn memset(&mut self, ptr: u64, byte: u8, len: usize) -> Result<(), EmuError> {
        let _ = (ptr, byte, len);
        Err(todo_err())
    }
    /// Parse and decode `ptx` (every kernel in it); `name` appears in error messages.
    pub fn load_module(&mut self, name: &str, ptx: &str) -> Result<ModuleHandle, EmuError> {
        let _ = (name, ptx);
        Err(todo_err())
    }
    /// The `.entry` kernels of a module.
    pub fn kernels(&self, m: ModuleHandle) -> Vec<String> {
        let _ = m;
        Vec::new()
    }
    pub fn params(&self, m: ModuleHandle, kernel: &str) -> Result<Vec<ParamInfo>, EmuError> {
        let _ = (m, kernel);
        Err(todo_err())
    }
    /// Run a kernel to completion. Arguments are checked against the kernel's `.param` list
    /// (count, size); limits as the driver checks them. Returns the launch's counters.
    pub fn launch(&mut self, m: ModuleHandle, kernel: &str, cfg: &LaunchConfig, args: &[ArgValue]) -> Result<LaunchStats, EmuError> {
        let _ = (m, kernel, cfg, args);
        Err(todo_err())
    }
}
