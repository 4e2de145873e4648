//! The whole model against DeepSeek's official outputs on `../shared/golden/tiny`:
//! smooth run (activation quantisation off) within 1e-4 relative error per row for every
//! prefill position, decode step and the MTP logits; quantised run by argmax agreement >= 0.8.
//! Each check runs with the reference's linears and again with the engine's CPU kernels at every
//! level this CPU has (the CPU backend's model): the same bounds hold for both.

use dsv4_engine::backend::cpu::CpuKernels;
use dsv4_engine::cpu_kernels::{Fp4Math, Level};
use dsv4_reference::golden::{argmax, max_row_rel_err, rel_err, shared_path, GoldenFile};
use dsv4_reference::model::Trace;
use dsv4_reference::{ActQuant, Logits, Model};

struct Run {
    prefill: Vec<f32>,
    decode: Vec<f32>,
    mtp: Vec<f32>,
    traces: Vec<Trace>,
}

fn tiny(kernels: CpuKernels) -> (Model, std::path::PathBuf) {
    let dir = shared_path(env!("CARGO_MANIFEST_DIR"), "golden/tiny");
    (kernels.apply(Model::load(&dir).expect("load golden/tiny")), dir)
}

/// The reference, then every kernel level of this CPU.
fn all_kernels() -> Vec<CpuKernels> {
    let fast = Level::available().into_iter().map(|level| CpuKernels::Fast { level, fp4: Fp4Math::Exact });
    std::iter::once(CpuKernels::Reference).chain(fast).collect()
}

/// Prefill P at position 0, teacher-forced decode of the rest, MTP as the golden README says.
fn run(model: &Model, g: &GoldenFile, aq: ActQuant) -> Run {
    let [b, n] = g.shape("input_ids")[..] else { panic!() };
    let p = g.shape("prefill_logits_all")[1];
    let ids: Vec<u32> = g.ints("input_ids").iter().map(|&v| v as u32).collect();
    let row = model.cfg.hc_mult * model.cfg.dim;
    let mut r = Run { prefill: vec![], decode: vec![], mtp: vec![], traces: vec![] };
    for seq in ids.chunks(n).take(b) {
        let mut st = model.new_state();
        let mut tr = Trace::default();
        let out = model.forward(&seq[..p], &mut st, aq, Logits::All, Some(&mut tr)).unwrap();
        r.prefill.extend(&out.logits);
        r.traces.push(tr);
        for &t in &seq[p..] {
            r.decode.extend(model.forward(&[t], &mut st, aq, Logits::Last, None).unwrap().logits);
        }
        let mut ms = model.new_mtp_state();
        r.mtp.extend(model.mtp(0, &out.hidden[..(p - 1) * row], &seq[1..p], &mut ms, aq, Logits::Last).unwrap().logits);
    }
    r
}

#[test]
fn smooth_golden_within_1e4_per_row() {
    all_kernels().into_iter().for_each(smooth);
}

#[test]
fn quantised_golden_argmax_agreement() {
    all_kernels().into_iter().for_each(quantised);
}

/// The approximate int8 FP4 path (`--cpu-kernels int8`): measured, not held to the exact paths'
/// bounds. int8 activations per 32 inputs cost ~3.5e-3 of rms(y) per FP4 product, which
/// compounds through the blocks: on golden/tiny the smooth logits are ~0.4 off per row and the
/// quantised run's argmax agreement is ~0.75 (the golden criterion for exact paths is 0.8). The
/// assertions are a floor that a broken kernel (garbage or NaN) falls through, not a claim of
/// accuracy; the printed numbers are what the README quotes.
#[test]
fn int8_fp4_path_error_is_measured() {
    let k = CpuKernels::Fast { level: Level::detect(), fp4: Fp4Math::Int8 };
    let e = smooth_errors(k);
    println!("int8 FP4 path, smooth golden max per-row relative error: prefill {:.3e}, decode {:.3e}, mtp {:.3e}", e[0], e[1], e[2]);
    assert!(e.iter().all(|&x| x < 1.0), "{k:?}: {e:?}");
    let frac = argmax_agreement(k);
    assert!(frac >= 0.5, "{k:?}: argmax agreement {frac:.3}");
}

fn smooth(kernels: CpuKernels) {
    let [e_prefill, e_decode, e_mtp] = smooth_errors(kernels);
    assert!(e_prefill < 1e-4, "{kernels:?}: prefill rows: {e_prefill:e}");
    assert!(e_decode < 1e-4, "{kernels:?}: decode rows: {e_decode:e}");
    assert!(e_mtp < 1e-4, "{kernels:?}: mtp rows: {e_mtp:e}");
}

/// Max per-row relative error of the prefill, decode and MTP logits of the smooth run.
fn smooth_errors(kernels: CpuKernels) -> [f64; 3] {
    println!("-- linears: {kernels:?}");
    let (model, dir) = tiny(kernels);
    let g = GoldenFile::open(dir.join("golden_smooth.safetensors")).unwrap();
    let r = run(&model, &g, ActQuant::Off);
    let v = model.cfg.vocab_size;
    let [b, p, _] = g.shape("prefill_logits_all")[..] else { panic!() };

    // Bisecting aid: the residual streams after every block, and the routes.
    for l in 0..model.cfg.n_layers {
        let want = g.f32s(&format!("hidden.{l}"));
        let got: Vec<f32> = r.traces.iter().flat_map(|t| t.hidden[l].iter().copied()).collect();
        let routes: Vec<i64> = r.traces.iter().flat_map(|t| t.routes[l].iter().map(|&e| e as i64)).collect();
        let same = routes.iter().zip(g.ints(&format!("routes.{l}"))).filter(|(a, b)| *a == b).count();
        println!("block {l}: hidden relative error {:.3e}, routes {same}/{} equal", rel_err(&got, &want), routes.len());
    }
    let e_prefill = max_row_rel_err(&r.prefill, &g.f32s("prefill_logits_all"), v);
    let e_decode = max_row_rel_err(&r.decode, &g.f32s("decode_logits"), v);
    let e_mtp = max_row_rel_err(&r.mtp, &g.f32s("mtp_logits"), v);
    println!("smooth golden, max per-row relative error: prefill {e_prefill:.3e} ({b}x{p} rows), decode {e_decode:.3e}, mtp {e_mtp:.3e}");
    [e_prefill, e_decode, e_mtp]
}

fn quantised(kernels: CpuKernels) {
    let frac = argmax_agreement(kernels);
    assert!(frac >= 0.8, "{kernels:?}: argmax agreement {frac:.3} < 0.8");
}

/// Argmax agreement of the quantised run's prefill and decode rows.
fn argmax_agreement(kernels: CpuKernels) -> f64 {
    println!("-- linears: {kernels:?}");
    let (model, dir) = tiny(kernels);
    let g = GoldenFile::open(dir.join("golden_quant.safetensors")).unwrap();
    let r = run(&model, &g, ActQuant::On);
    let v = model.cfg.vocab_size;
    let got: Vec<f32> = [r.prefill, r.decode].concat();
    let want: Vec<f32> = [g.f32s("prefill_logits_all"), g.f32s("decode_logits")].concat();
    let rows = got.len() / v;
    let agree = got.chunks(v).zip(want.chunks(v)).filter(|(a, b)| argmax(a) == argmax(b)).count();
    let frac = agree as f64 / rows as f64;
    let mtp_agree = r.mtp.chunks(v).zip(g.f32s("mtp_logits").chunks(v)).filter(|(a, b)| argmax(a) == argmax(b)).count();
    println!("quantised golden: argmax agreement {agree}/{rows} = {frac:.3}; mtp {mtp_agree}/{}; median row rel err {:.3e}",
        r.mtp.len() / v, median(got.chunks(v).zip(want.chunks(v)).map(|(a, b)| rel_err(a, b)).collect()));
    frac
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
