//! Reading golden vectors (`../shared/golden/`) and the comparisons its README prescribes.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// A safetensors file of reference values, read whole.
pub struct GoldenFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl GoldenFile {
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<GoldenFile> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path)?;
        Ok(GoldenFile { path, bytes })
    }

    fn view(&self, name: &str) -> safetensors::tensor::TensorView<'_> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
        st.tensor(name).unwrap_or_else(|e| panic!("{}: {name}: {e}", self.path.display()))
    }

    pub fn names(&self) -> Vec<String> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
        st.names().into_iter().map(String::from).collect()
    }

    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.view(name).shape().to_vec()
    }

    /// An F32 tensor.
    pub fn f32s(&self, name: &str) -> Vec<f32> {
        let v = self.view(name);
        assert_eq!(v.dtype(), Dtype::F32, "{name} is {:?}", v.dtype());
        v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }

    /// An integer tensor (I64, I32, U8) widened to i64.
    pub fn ints(&self, name: &str) -> Vec<i64> {
        let v = self.view(name);
        match v.dtype() {
            Dtype::I64 => v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
            Dtype::I32 => v.data().chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
            Dtype::U8 => v.data().iter().map(|&b| b as i64).collect(),
            other => panic!("{name} is {other:?}"),
        }
    }

    /// Raw bytes of a tensor (bit patterns).
    pub fn bytes(&self, name: &str) -> Vec<u8> {
        self.view(name).data().to_vec()
    }
}

/// ‖a−b‖ / ‖b‖.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// The largest per-row relative error over rows of length `n`.
pub fn max_row_rel_err(a: &[f32], b: &[f32], n: usize) -> f64 {
    a.chunks(n).zip(b.chunks(n)).map(|(x, y)| rel_err(x, y)).fold(0.0, f64::max)
}

pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// The path of `../shared/golden/<rel>` from a crate inside the workspace.
pub fn shared_path(manifest_dir: &str, rel: &str) -> PathBuf {
    let mut p = PathBuf::from(manifest_dir);
    loop {
        let cand = p.join("../shared").join(rel);
        if cand.exists() {
            return cand;
        }
        if !p.pop() {
            return PathBuf::from(manifest_dir).join("../shared").join(rel);
        }
    }
}
