//! GPU telemetry while a benchmark runs, through NVML (`nvml-wrapper`, which loads
//! libnvidia-ml at run time): SM and memory clocks, power, memory used, temperature and
//! throttle reasons every 100 ms, so a throttled or shared GPU shows in the results instead of
//! passing as a slow kernel. Without NVML (no driver, no GPU: CI) `start` returns `None`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One reading; a field NVML would not give is `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub t_s: f64,
    pub sm_clock_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    pub power_w: Option<f64>,
    pub mem_used_bytes: Option<u64>,
    pub temperature_c: Option<u32>,
    /// NVML's clock-throttle-reason bit mask (0 = none; 1 = GPU idle).
    pub throttle_reasons: Option<u64>,
}

/// Min / median / max of each quantity over a run, and the union of throttle reasons.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub device: String,
    pub samples: usize,
    pub sm_clock_mhz: Option<[f64; 3]>,
    pub mem_clock_mhz: Option<[f64; 3]>,
    pub power_w: Option<[f64; 3]>,
    pub mem_used_gib: Option<[f64; 3]>,
    pub temperature_c: Option<[f64; 3]>,
    pub throttle_reasons_any: u64,
}

/// Min / median / max of `v` (None when empty).
fn spread(mut v: Vec<f64>) -> Option<[f64; 3]> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some([v[0], v[v.len() / 2], v[v.len() - 1]])
}

/// Summarises `samples` of `device`.
pub fn summarize(device: &str, samples: &[Sample]) -> Summary {
    let col = |f: &dyn Fn(&Sample) -> Option<f64>| spread(samples.iter().filter_map(f).collect());
    Summary {
        device: device.to_string(),
        samples: samples.len(),
        sm_clock_mhz: col(&|s| s.sm_clock_mhz.map(f64::from)),
        mem_clock_mhz: col(&|s| s.mem_clock_mhz.map(f64::from)),
        power_w: col(&|s| s.power_w),
        mem_used_gib: col(&|s| s.mem_used_bytes.map(|b| b as f64 / (1u64 << 30) as f64)),
        temperature_c: col(&|s| s.temperature_c.map(f64::from)),
        throttle_reasons_any: samples.iter().filter_map(|s| s.throttle_reasons).fold(0, |a, b| a | b),
    }
}

/// A running sampler; `stop` joins it and returns what it saw.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Sample>>>,
    device: String,
}

/// Default sampling period.
pub const PERIOD: Duration = Duration::from_millis(100);

impl Sampler {
    /// Starts sampling GPU `index` every `period`; `None` when NVML or the device is absent (the
    /// library missing, no driver, no such index). Never panics.
    pub fn start(index: u32, period: Duration) -> Option<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Option<String>>();
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("nvml-telemetry".into())
            .spawn(move || {
                // NVML's handles borrow the library object, so both live on this thread.
                let nvml = match std::panic::catch_unwind(nvml_wrapper::Nvml::init) {
                    Ok(Ok(n)) => n,
                    _ => {
                        let _ = tx.send(None);
                        return Vec::new();
                    }
                };
                let dev = match nvml.device_by_index(index) {
                    Ok(d) => d,
                    Err(_) => {
                        let _ = tx.send(None);
                        return Vec::new();
                    }
                };
                let _ = tx.send(Some(dev.name().unwrap_or_else(|_| format!("GPU {index}"))));
                let t0 = Instant::now();
                let mut out = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    out.push(read(&dev, t0));
                    std::thread::sleep(period);
                }
                out.push(read(&dev, t0));
                out
            })
            .ok()?;
        match rx.recv() {
            Ok(Some(device)) => Some(Sampler { stop, handle: Some(handle), device }),
            _ => {
                let _ = handle.join();
                None
            }
        }
    }

    /// The GPU's name as NVML reports it.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Stops the thread; returns every sample taken.
    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn read(dev: &nvml_wrapper::Device, t0: Instant) -> Sample {
    use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
    Sample {
        t_s: t0.elapsed().as_secs_f64(),
        sm_clock_mhz: dev.clock_info(Clock::SM).ok(),
        mem_clock_mhz: dev.clock_info(Clock::Memory).ok(),
        power_w: dev.power_usage().ok().map(|mw| mw as f64 / 1000.0),
        mem_used_bytes: dev.memory_info().ok().map(|m| m.used),
        temperature_c: dev.temperature(TemperatureSensor::Gpu).ok(),
        throttle_reasons: dev.current_throttle_reasons().ok().map(|r| r.bits()),
    }
}

/// Whether NVML can be opened on this machine (a probe; used by tests and `--help` texts).
pub fn nvml_available() -> bool {
    matches!(std::panic::catch_unwind(nvml_wrapper::Nvml::init), Ok(Ok(_)))
}
