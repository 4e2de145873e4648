//! Rotary position embedding on the LAST `rd` dims of a head, pairs (2i, 2i+1) interleaved,
//! with optional YaRN frequency interpolation (compressed layers).

/// The per-pair frequencies of one RoPE configuration.
#[derive(Clone, Debug)]
pub struct Rope {
    /// `rd / 2` frequencies.
    pub freqs: Vec<f32>,
}

impl Rope {
    /// `f_i = 1 / theta^(2i/rd)`, computed in f32 as the official code does. With
    /// `original_seq_len > 0`, YaRN: `f_i ← f_i/factor·(1−s_i) + f_i·s_i` where
    /// `s_i = 1 − clamp((i−low)/(high−low), 0, 1)` and `[low, high]` is the correction range of
    /// (beta_fast, beta_slow).
    pub fn new(rd: usize, theta: f64, original_seq_len: usize, factor: f64, beta_fast: f64, beta_slow: f64) -> Rope {
        let half = rd / 2;
        let mut freqs: Vec<f32> = (0..half)
            .map(|i| {
                let e = (2 * i) as f32 / rd as f32;
                1.0f32 / ((theta as f32 as f64).powf(e as f64) as f32)
            })
            .collect();
        if original_seq_len > 0 {
            let (low, high) = correction_range(beta_fast, beta_slow, rd, theta, original_seq_len);
            let high = if low == high { high + 0.001 } else { high };
            for (i, f) in freqs.iter_mut().enumerate() {
                let ramp = ((i as f32 - low) / (high - low)).clamp(0.0, 1.0);
                let smooth = 1.0 - ramp;
                *f = *f / factor as f32 * (1.0 - smooth) + *f * smooth;
            }
        }
        Rope { freqs }
    }

    /// `(cos, sin)` of every pair at position `pos`: the angle `pos·f_i` is rounded to f32 first.
    pub fn cos_sin(&self, pos: usize) -> (Vec<f32>, Vec<f32>) {
        self.freqs
            .iter()
            .map(|&f| {
                let a = (pos as f32 * f) as f64;
                (a.cos() as f32, a.sin() as f32)
            })
            .unzip()
    }

    /// Rotate the last `2 * freqs.len()` dims of every row of length `n` in `x` by the angle of
    /// `pos` (or by minus it when `inverse`).
    pub fn apply(&self, x: &mut [f32], n: usize, pos: usize, inverse: bool) {
        let (cos, sin) = self.cos_sin(pos);
        let rd = 2 * self.freqs.len();
        for row in x.chunks_mut(n) {
            let tail = &mut row[n - rd..];
            for i in 0..self.freqs.len() {
                let (c, s) = (cos[i], if inverse { -sin[i] } else { sin[i] });
                let (a, b) = (tail[2 * i], tail[2 * i + 1]);
                tail[2 * i] = a * c - b * s;
                tail[2 * i + 1] = a * s + b * c;
            }
        }
    }
}

/// YaRN's correction range: dims whose wavelength crosses `beta` rotations over the original
/// context, floored/ceiled and clamped to `[0, rd-1]` (computed in f64 like Python's math).
fn correction_range(beta_fast: f64, beta_slow: f64, rd: usize, theta: f64, original: usize) -> (f32, f32) {
    let dim = |rot: f64| rd as f64 * (original as f64 / (rot * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln());
    let low = dim(beta_fast).floor().max(0.0);
    let high = dim(beta_slow).ceil().min(rd as f64 - 1.0);
    (low as f32, high as f32)
}
