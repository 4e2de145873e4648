//! RMSNorm: `w * x / sqrt(mean(x^2) + eps)` in f32, per row.

/// Normalise each row of `x` (`x.len() / w.len()` rows) in place and scale by `w`.
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    for row in x.chunks_mut(w.len()) {
        let r = rms_scale(row, eps);
        for (v, g) in row.iter_mut().zip(w) {
            *v = g * (*v * r);
        }
    }
}

pub fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut y = x.to_vec();
    rms_norm_inplace(&mut y, w, eps);
    y
}

/// Rows of `x` of length `n` normalised without a weight (the per-head q normalisation).
pub fn rms_norm_unweighted_inplace(x: &mut [f32], n: usize, eps: f32) {
    for row in x.chunks_mut(n) {
        let r = rms_scale(row, eps);
        row.iter_mut().for_each(|v| *v *= r);
    }
}

/// `1/sqrt(mean(x^2) + eps)`.
pub fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    1.0 / (ms + eps).sqrt()
}
