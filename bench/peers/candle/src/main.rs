//! candle-core peer: y[b, out] = x[b, inp] . W[out, inp]^T through `QMatMul` (q4_0 / q4k / q8_0)
//! or a plain BF16 / F16 `Tensor::matmul` (head; W stored [out, inp], used transposed). Sweeps distinct weight copies totalling >= --mb MB so the
//! weights come from DRAM; one warm-up sweep, then the median of --sweeps timed sweeps.
//! Prints one JSON line per run: {"impl","format","out","inp","batch","weight_bytes",
//! "median_ms","runs","copies"}; median_ms and weight_bytes are per matrix.
//! Threads: RAYON_NUM_THREADS (the script sets 2).
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use std::time::Instant;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let fmt = arg(&args, "--format", "q4_0");
    let out: usize = arg(&args, "--out", "2048").parse().unwrap();
    let inp: usize = arg(&args, "--inp", "4096").parse().unwrap();
    let batches: Vec<usize> = arg(&args, "--batch", "1,8,32")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let mb: f64 = arg(&args, "--mb", "512").parse().unwrap();
    let sweeps: usize = arg(&args, "--sweeps", "5").parse().unwrap();
    let dev = Device::Cpu;

    // One random matrix, quantised once, then copied into distinct buffers: distinct memory is
    // what matters for DRAM streaming, and it saves quantising ~1e9 random weights.
    enum W {
        Q(Vec<QMatMul>),
        Bf16(Vec<Tensor>),
    }
    let half = match fmt.as_str() {
        "bf16" => Some(DType::BF16),
        "f16" => Some(DType::F16),
        _ => None,
    };
    let (weights, bytes, copies) = if let Some(hdt) = half {
        let w = Tensor::rand(-0.03f32, 0.03, (out, inp), &dev)?.to_dtype(hdt)?;
        let bytes = out * inp * 2;
        let copies = ((mb * 1e6 / bytes as f64).ceil() as usize).max(1);
        let mut v = vec![w.t()?];
        for _ in 1..copies {
            v.push(v[0].t()?.copy()?.t()?);
        }
        (W::Bf16(v), bytes, copies)
    } else {
        let dt = match fmt.as_str() {
            "q4_0" => GgmlDType::Q4_0,
            "q4k" => GgmlDType::Q4K,
            "q8_0" => GgmlDType::Q8_0,
            _ => panic!("unknown --format {fmt}"),
        };
        let w = Tensor::rand(-0.03f32, 0.03, (out, inp), &dev)?;
        let q = QTensor::quantize(&w, dt)?;
        let bytes = q.storage_size_in_bytes();
        let data = q.data()?.into_owned();
        let copies = ((mb * 1e6 / bytes as f64).ceil() as usize).max(2);
        let mut v = Vec::with_capacity(copies);
        for _ in 0..copies {
            let st = QStorage::from_data(std::borrow::Cow::Borrowed(&data), &dev, dt)?;
            v.push(QMatMul::from_qtensor(QTensor::new(st, (out, inp))?)?);
        }
        (W::Q(v), bytes, copies)
    };

    for &b in &batches {
        let x = Tensor::rand(-1f32, 1.0, (b, inp), &dev)?;
        let x = match half {
            Some(hdt) => x.to_dtype(hdt)?,
            None => x,
        };
        let sweep = || -> candle_core::Result<f64> {
            let t = Instant::now();
            match &weights {
                W::Q(v) => {
                    for m in v {
                        std::hint::black_box(m.forward(&x)?);
                    }
                }
                W::Bf16(v) => {
                    for m in v {
                        std::hint::black_box(x.matmul(m)?);
                    }
                }
            }
            Ok(t.elapsed().as_secs_f64() * 1e3 / copies as f64)
        };
        sweep()?; // warm-up (also builds candle's repack caches)
        let mut ts: Vec<f64> = (0..sweeps).map(|_| sweep()).collect::<candle_core::Result<_>>()?;
        ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = ts[ts.len() / 2];
        println!(
            "{{\"impl\":\"candle-{fmt}\",\"format\":\"{fmt}\",\"out\":{out},\"inp\":{inp},\"batch\":{b},\"weight_bytes\":{bytes},\"median_ms\":{med:.6},\"runs\":{sweeps},\"copies\":{copies}}}"
        );
    }
    Ok(())
}
