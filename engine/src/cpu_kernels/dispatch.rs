//! Runtime CPU feature detection. The level is passed explicitly to every kernel entry point so
//! tests can force each one; `Level::detect()` picks the best the CPU has.

use std::sync::OnceLock;

/// An instruction-set level, ordered from the most portable up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Portable Rust, any CPU.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL (on top of AVX2): FP4, FP8 and BF16 GEMV kernels of their own
    /// (16-lane decode; with VNNI, FP4 batches of 1-3 on the exact integer kernel); attention
    /// and the int8 path run their AVX2 code.
    Avx512,
    /// AVX-512 with BF16 and VBMI, plus AMX-BF16 tiles the OS lets this process use: the
    /// batched FP4 / FP8 / BF16 GEMM multiplies on tiles (`amx`); everything else runs the
    /// AVX-512 code.
    Amx,
}

impl Level {
    /// The best level this CPU supports (cached).
    pub fn detect() -> Level {
        static L: OnceLock<Level> = OnceLock::new();
        *L.get_or_init(|| {
            let mut best = Level::Scalar;
            for l in [Level::Avx2, Level::Avx512, Level::Amx] {
                if l.is_supported() {
                    best = l;
                }
            }
            best
        })
    }

    /// Whether this CPU can run the kernels of this level.
    pub fn is_supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                Level::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Amx => Level::has_avx512_bf16_vbmi() && super::amx::enabled(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Whether AVX-512 VNNI is present (for the int8 path; informational for now).
    pub fn has_vnni() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Whether AVX-512 VBMI (`vpermi2b`) is present too: the FP8 kernel's byte-table decode.
    pub fn has_avx512_bf16_vbmi() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            Level::has_avx512_bf16() && is_x86_feature_detected!("avx512vbmi")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Whether AVX-512 BF16 (`vdpbf16ps`) is present: the FP4 kernel's dot-product path.
    pub fn has_avx512_bf16() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            Level::Avx512.is_supported() && is_x86_feature_detected!("avx512bf16")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Whether this CPU's vector FMA takes subnormal operands at full speed: AMD Zen cores (and
    /// Hygon's) do; Intel cores take a microcode assist on every instruction with a subnormal
    /// input. The AVX2 FP8 kernels that hold e4m3 subnormals as f32 subnormals (`fp8_lanes`, the
    /// `Lanes` panel decode) run only where this holds: on a Xeon (Sapphire Rapids class, KVM)
    /// they measured 1.2 GB/s at batch 1 and 0.15 at batch 8, cache-resident (`kern_cache`),
    /// where random weights put a subnormal in nearly every vector.
    pub fn fast_subnormals() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            static F: OnceLock<bool> = OnceLock::new();
            *F.get_or_init(|| {
                // leaf 0: the vendor string in ebx, edx, ecx
                #[allow(unused_unsafe)]
                let r = unsafe { std::arch::x86_64::__cpuid(0) };
                let w = |s: &[u8; 12]| std::array::from_fn::<u32, 3, _>(|i| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]));
                let v = [r.ebx, r.edx, r.ecx];
                v == w(b"AuthenticAMD") || v == w(b"HygonGenuine")
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Every level this CPU supports, most portable first.
    pub fn available() -> Vec<Level> {
        [Level::Scalar, Level::Avx2, Level::Avx512, Level::Amx].into_iter().filter(|l| l.is_supported()).collect()
    }

    /// The level whose vector kernels run: `self`, checked (an unsupported level panics); AMX
    /// runs the AVX-512 ones (the GEMMs check `Level::Amx` before this for their tile path).
    pub(crate) fn kernel(self) -> Level {
        assert!(self.is_supported(), "CPU level {self:?} is not supported on this machine");
        if self == Level::Amx {
            Level::Avx512
        } else {
            self
        }
    }

    /// Parses `scalar`, `avx2`, `avx512`, `amx` (for env overrides and command lines).
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "scalar" => Some(Level::Scalar),
            "avx2" => Some(Level::Avx2),
            "avx512" => Some(Level::Avx512),
            "amx" => Some(Level::Amx),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Level;

    /// The vendor read from cpuid is the kernel's `vendor_id` (Linux x86-64).
    #[test]
    fn fast_subnormals_follows_the_cpu_vendor() {
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        {
            let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
            let vendor = info.lines().find_map(|l| l.strip_prefix("vendor_id")).expect("a vendor_id line");
            let vendor = vendor.trim_start_matches([' ', '\t', ':']).trim();
            assert_eq!(Level::fast_subnormals(), vendor == "AuthenticAMD" || vendor == "HygonGenuine", "vendor {vendor}");
        }
    }
}
