//! Sampling a token from logits: greedy, temperature, top-k, top-p, a per-request seed (the same
//! seed and prompt give the same tokens), and logprobs with the top alternatives.

/// What a request asks of the sampler. `temperature == 0` is greedy.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Nucleus: keep the smallest set of tokens whose probability reaches `top_p` (1 = off).
    pub top_p: f32,
    /// Keep the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    pub seed: Option<u64>,
    /// Return the chosen token's logprob and this many alternatives (None = no logprobs).
    pub logprobs: Option<usize>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 0, seed: None, logprobs: None }
    }
}

/// The largest `top_logprobs` accepted (the OpenAI API's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    #[error("temperature must be a number between 0 and 2, got {0}")]
    Temperature(f32),
    #[error("top_p must be a number in (0, 1], got {0}")]
    TopP(f32),
    #[error("top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {0}")]
    TopLogprobs(usize),
}

impl SamplingParams {
    pub fn validate(&self) -> Result<(), SamplingError> {
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err(SamplingError::Temperature(self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplingError::TopP(self.top_p));
        }
        if let Some(n) = self.logprobs {
            if n > MAX_TOP_LOGPROBS {
                return Err(SamplingError::TopLogprobs(n));
            }
        }
        Ok(())
    }
}

/// A chosen token with its logprob under the model's distribution and the top alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampled {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// xoshiro256** seeded through splitmix64: small, fast and reproducible across platforms.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    /// A seed from the clock, for requests without one.
    pub fn from_entropy() -> Rng {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let addr = &t as *const u64 as u64;
        Rng::new(t ^ addr.rotate_left(32))
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `log_softmax` of the logits (f64 accumulation).
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let lse = (logits.iter().map(|&l| ((l - m) as f64).exp()).sum::<f64>()).ln() as f32 + m;
    logits.iter().map(|&l| l - lse).collect()
}

/// Pick the next token. Ties in greedy decoding go to the lower id.
pub fn sample(logits: &[f32], p: &SamplingParams, rng: &mut Rng) -> Sampled {
    assert!(!logits.is_empty(), "sampling from empty logits");
    let logp = log_softmax(logits);
    let token = if p.temperature == 0.0 { argmax(logits) } else { sample_filtered(logits, p, rng) };
    let top = match p.logprobs {
        Some(n) if n > 0 => top_n(&logp, n).into_iter().map(|i| (i as u32, logp[i])).collect(),
        _ => Vec::new(),
    };
    Sampled { token: token as u32, logprob: logp[token], top }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Indices of the n largest values, descending, ties to the lower index.
fn top_n(v: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    let n = n.min(v.len());
    idx.select_nth_unstable_by(n.saturating_sub(1).min(v.len() - 1), |&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx.truncate(n);
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx
}

/// Temperature, then top-k, then top-p over the sorted candidates, then one draw.
fn sample_filtered(logits: &[f32], p: &SamplingParams, rng: &mut Rng) -> usize {
    let k = if p.top_k == 0 { logits.len() } else { p.top_k.min(logits.len()) };
    let cand = top_n(logits, k);
    let m = logits[cand[0]];
    let mut probs: Vec<f64> = cand.iter().map(|&i| (((logits[i] - m) / p.temperature) as f64).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|q| *q /= total);
    if p.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (i, q) in probs.iter().enumerate() {
            acc += q;
            if acc >= p.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut r = rng.next_f64() * total;
    for (i, q) in probs.iter().enumerate() {
        if r < *q {
            return cand[i];
        }
        r -= q;
    }
    cand[probs.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_p: f32, top_k: usize) -> SamplingParams {
        SamplingParams { temperature, top_p, top_k, seed: None, logprobs: Some(3) }
    }

    #[test]
    fn greedy_takes_the_argmax_and_reports_logprobs() {
        let logits = [0.1, 2.0, -1.0, 2.0, 0.5];
        let s = sample(&logits, &params(0.0, 1.0, 0), &mut Rng::new(1));
        assert_eq!(s.token, 1, "ties go to the lower id");
        let lp = log_softmax(&logits);
        assert_eq!(s.logprob, lp[1]);
        assert_eq!(s.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 3, 4]);
        let total: f64 = lp.iter().map(|&l| (l as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..50).map(|_| sample(&logits, &params(1.0, 1.0, 0), &mut rng).token).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let logits = [5.0, 4.0, 3.0, 0.0, -1.0, -2.0];
        let mut rng = Rng::new(3);
        for _ in 0..500 {
            assert!(sample(&logits, &params(1.5, 1.0, 2), &mut rng).token < 2);
        }
        // p(0) ≈ 0.66, p(0)+p(1) ≈ 0.91: top_p 0.8 keeps exactly tokens 0 and 1.
        for _ in 0..500 {
            assert!(sample(&logits, &params(1.0, 0.8, 0), &mut rng).token < 2);
        }
    }

    #[test]
    fn temperature_one_follows_the_softmax() {
        let logits = [0.0, (2.0f32).ln(), (3.0f32).ln()]; // probabilities 1/6, 2/6, 3/6
        let mut rng = Rng::new(11);
        let mut counts = [0usize; 3];
        let n = 60_000;
        for _ in 0..n {
            counts[sample(&logits, &params(1.0, 1.0, 0), &mut rng).token as usize] += 1;
        }
        for (i, c) in counts.iter().enumerate() {
            let want = (i + 1) as f64 / 6.0;
            let got = *c as f64 / n as f64;
            assert!((got - want).abs() < 0.01, "token {i}: {got} vs {want}");
        }
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert_eq!(params(2.5, 1.0, 0).validate(), Err(SamplingError::Temperature(2.5)));
        assert_eq!(params(1.0, 0.0, 0).validate(), Err(SamplingError::TopP(0.0)));
        assert!(params(f32::NAN, 1.0, 0).validate().is_err());
        let mut p = params(1.0, 1.0, 0);
        p.logprobs = Some(21);
        assert_eq!(p.validate(), Err(SamplingError::TopLogprobs(21)));
    }
}
