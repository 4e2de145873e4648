//! `Launcher::encode_tensor_map` end to end: the emulator's TMA pipeline test kernel
//! (`kernels/emu/tests/cuda/tma_pipeline.cu`: a 4-stage mbarrier ring fed by 128B-swizzled TMA
//! tile loads) through the `Launcher` of `Gpu::for_tests()`, so on a GPU (DSV4_TEST_DEVICE=cuda)
//! the same expectation checks the real `cuTensorMapEncodeTiled` and TMA unit.
use dsv4_kernels::launch::{Swizzle, TensorMapDesc, TmapDtype};
use dsv4_kernels::{Gpu, KernelArg, LaunchCfg};

const PTX: &str = include_str!("../emu/tests/ptx/tma_pipeline.ptx");

#[test]
fn tma_pipeline_through_the_launcher() {
    let gpu = Gpu::for_tests();
    let l = gpu.launcher();
    let m = l.load_module("tma_pipeline", PTX).unwrap();
    let (ntiles, rows, cols) = (7usize, 53usize, 32usize);
    let input: Vec<f32> = (0..rows * cols).map(|i| ((i * 37) % 1001) as f32 / 4.0 - 100.0).collect();
    let src = gpu.upload_f32(&input).unwrap();
    let out = gpu.alloc(ntiles * 8 * cols * 4).unwrap();
    let desc = TensorMapDesc::dense(TmapDtype::F32, src.ptr(), &[cols as u64, rows as u64], &[cols as u32, 8], Swizzle::B128);
    let map = l.encode_tensor_map(&desc).unwrap();
    let cfg = LaunchCfg { grid: [1, 1, 1], block: [96, 1, 1], shared: 0 };
    l.launch(m, "tma_pipeline", &cfg, &[KernelArg::Bytes(map.to_vec()), out.arg(), KernelArg::I32(ntiles as i32), KernelArg::I32(0)]).unwrap();
    l.synchronize().unwrap();
    let got = out.download_f32().unwrap();
    for (i, g) in got.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        let v = if r < rows { input[r * cols + c] } else { 0.0 };
        assert_eq!(g.to_bits(), (v * 2.0 + 1.0).to_bits(), "row {r} col {c}");
    }
    // the encoder's validation: a box wider than the 128B swizzle span is rejected
    let bad = TensorMapDesc::dense(TmapDtype::F32, src.ptr(), &[64, rows as u64], &[64, 8], Swizzle::B128);
    assert!(l.encode_tensor_map(&bad).is_err());
}
