//! `--device emu`: the CUDA backend's kernels run on the PTX emulator, end to end, as a user
//! runs them; `--device cuda` without a GPU is a clear error; `dsv4 emu run` / `coverage`.

use std::process::Command;

use dsv4_reference::golden::{max_row_rel_err, shared_path, GoldenFile};

fn dsv4() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dsv4"))
}

fn run(c: &mut Command) -> (bool, String, String) {
    let o = c.output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn emulated_cuda_backend_reproduces_the_smooth_golden() {
    let dir = shared_path(env!("CARGO_MANIFEST_DIR"), "golden/tiny");
    let golden = dir.join("golden_smooth.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("logits.safetensors");
    let (ok, _, err) = run(dsv4()
        .args(["logits", "--device", "emu", "--model"])
        .arg(&dir)
        .arg("--input")
        .arg(&golden)
        .args(["--prefill", "37", "--no-act-quant", "--out"])
        .arg(&out));
    assert!(ok, "{err}");
    let (ours, gold) = (GoldenFile::open(&out).unwrap(), GoldenFile::open(&golden).unwrap());
    // The golden README's bound for the smooth run: every row below 1e-4 relative.
    for name in ["prefill_logits_all", "decode_logits", "mtp_logits"] {
        assert_eq!(ours.shape(name), gold.shape(name), "{name}");
        let e = max_row_rel_err(&ours.f32s(name), &gold.f32s(name), 256);
        assert!(e < 1e-4, "{name}: {e:e}");
    }
}

#[test]
fn generate_on_the_emulated_gpu_matches_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let gen = |device: &str| {
        run(dsv4().env("DSV4_CACHE", tmp.path()).args(["generate", "--device", device, "--prompt", "Hello", "--max-tokens", "6", "--temperature", "0"]))
    };
    let (ok, cpu, err) = gen("cpu");
    assert!(ok, "{err}");
    let (ok, emu, err) = gen("emu");
    assert!(ok, "{err}");
    assert!(err.contains("PTX emulator"), "the device is named: {err}");
    assert!(!cpu.trim().is_empty());
    assert_eq!(cpu, emu, "greedy text differs between the CPU reference and the emulated CUDA backend");
}

#[test]
fn cuda_without_a_gpu_is_a_clear_error() {
    if dsv4_kernels::Gpu::cuda(0).is_ok() {
        return; // a real GPU is here: nothing to check
    }
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(dsv4().env("DSV4_CACHE", tmp.path()).args(["generate", "--device", "cuda", "--prompt", "Hi", "--max-tokens", "2"]));
    assert!(!ok, "--device cuda succeeded without a GPU");
    assert!(err.contains("--device cuda") && !err.contains("panicked"), "{err}");
    // auto falls back to the CPU and says why in one line.
    let (ok, _, err) = run(dsv4().env("DSV4_CACHE", tmp.path()).args(["generate", "--prompt", "Hi", "--max-tokens", "2"]));
    assert!(ok, "{err}");
    assert!(err.contains("device: cpu (auto:"), "{err}");
}

fn write_tensors(path: &std::path::Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| (n.to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn emu_run_launches_any_ptx_kernel_and_reports_faults() {
    let tmp = tempfile::tempdir().unwrap();
    let ptx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels/ptx/copy.ptx");
    let input = tmp.path().join("in.safetensors");
    let out = tmp.path().join("out.safetensors");
    let src: Vec<f32> = (0..12).map(|i| i as f32 * 1.5).collect();
    write_tensors(&input, &[("src", vec![3, 4], src.clone()), ("dst", vec![3, 2], vec![0.0; 6])]);
    // dst [3, 2] = columns 0..2 of src [3, 4]: copy_strided_f32(dst, 2, src, 4, rows 3, cols).
    let base = |extra: &[&str]| {
        let mut c = dsv4();
        c.args(["emu", "run", "--ptx"]).arg(&ptx).args(["--kernel", "copy_strided_f32", "--grid", "1,3", "--block", "256", "--in"]).arg(&input).arg("--out").arg(&out);
        c.args(["--arg", "buf:dst", "--arg", "u32:2", "--arg", "buf:src", "--arg", "u32:4", "--arg", "u32:3"]).args(extra);
        c
    };
    let (ok, stdout, err) = run(&mut base(&["--arg", "u32:2", "--profile"]));
    assert!(ok, "{err}");
    assert!(stdout.contains("thread-instructions") && stdout.contains("global bytes"), "{stdout}");
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let dst: Vec<f32> = st.tensor("dst").unwrap().data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(dst, vec![0.0, 1.5, 6.0, 7.5, 12.0, 13.5]);
    assert_eq!(st.tensor("src").unwrap().shape(), &[3, 4]);
    // 3 columns into rows of 2: the last row's third element lies past dst.
    let (ok, _, err) = run(&mut base(&["--arg", "u32:3"]));
    assert!(!ok, "an out-of-bounds store succeeded");
    assert!(err.contains("out of bounds") && err.contains("copy_strided_f32") && !err.contains("panicked"), "{err}");
    // A parameter list that does not match the kernel's.
    let (ok, _, err) = run(&mut base(&[]));
    assert!(!ok && err.contains("param"), "{err}");
    let (ok, _, err) = run(&mut base(&["--arg", "u32:x"]));
    assert!(!ok && err.contains("u32:x"), "{err}");
}

#[test]
fn emu_coverage_lists_the_embedded_forms() {
    let (ok, stdout, err) = run(dsv4().args(["emu", "coverage"]));
    assert!(ok, "{err}\n{stdout}");
    assert!(stdout.contains("ld.global") && stdout.contains("0 unsupported"), "{stdout}");
}
