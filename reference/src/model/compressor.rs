//! The KV compressor: gated pooling of `ratio` consecutive tokens into one entry. For ratio 4
//! the projections are 2·hd wide and blocks overlap (each entry also pools the first hd
//! channels of the previous block's tokens).

use crate::compute::{Compute, Reference};
use crate::linear::Linear;

/// A compressor's weights.
#[derive(Clone)]
pub struct Compressor {
    pub ratio: usize,
    /// Width of one entry.
    pub hd: usize,
    pub overlap: bool,
    /// `[coff·hd, dim]`, run in f32 without activation quantisation.
    pub wkv: Linear,
    pub wgate: Linear,
    /// `[ratio, coff·hd]`, added to the gate scores by position within the block.
    pub ape: Vec<f32>,
    /// RMSNorm weight `[hd]` applied to each pooled entry.
    pub norm: Vec<f32>,
}

/// The incomplete block (and, with overlap, the previous complete block) of one sequence.
#[derive(Clone, Debug, Default)]
pub struct CompressorState {
    /// Rows `[coff·hd]` of raw kv and of gate scores (+ ape) of the current block's tokens.
    pub kv: Vec<Vec<f32>>,
    pub score: Vec<Vec<f32>>,
    /// The previous complete block's rows (overlap only; empty before the first block).
    pub prev_kv: Vec<Vec<f32>>,
    pub prev_score: Vec<Vec<f32>>,
}

/// A compressor's projections of a run of rows: raw kv and gate scores, `[T, width]` each.
pub struct Projected {
    pub kv: Vec<f32>,
    pub score: Vec<f32>,
    /// `coff·hd`.
    pub width: usize,
}

impl Projected {
    /// Rows `r` of kv and of score.
    pub fn rows(&self, r: std::ops::Range<usize>) -> (&[f32], &[f32]) {
        let w = self.width;
        (&self.kv[r.start * w..r.end * w], &self.score[r.start * w..r.end * w])
    }
}

impl Compressor {
    pub fn coff(&self) -> usize {
        if self.overlap {
            2
        } else {
            1
        }
    }

    /// Feed tokens at positions `pos0..pos0+T` (rows of `x`, `[T, dim]`). Returns the pooled,
    /// not yet normalised entries completed by them, with their block index.
    pub fn feed(&self, x: &[f32], pos0: usize, st: &mut CompressorState) -> Vec<(usize, Vec<f32>)> {
        let p = self.project(&Reference, x);
        self.feed_projected(&p.kv, &p.score, pos0, st)
    }

    /// The kv and gate projections of the rows of `x` (`[T, dim]`). They do not depend on the
    /// position or the state, so a step that mixes sequences projects all its rows at once.
    pub fn project(&self, mm: &dyn Compute, x: &[f32]) -> Projected {
        let mut proj = mm.forward_many(&[(&self.wkv, x), (&self.wgate, x)], crate::quant::ActQuant::Off).into_iter();
        let (kv, score) = (proj.next().expect("kv"), proj.next().expect("score"));
        Projected { kv, score, width: self.coff() * self.hd }
    }

    /// `feed` on already projected rows (`[T, coff·hd]` each) of consecutive tokens at
    /// positions `pos0..`.
    pub fn feed_projected(&self, kv: &[f32], score: &[f32], pos0: usize, st: &mut CompressorState) -> Vec<(usize, Vec<f32>)> {
        let w = self.coff() * self.hd;
        assert_eq!(kv.len(), score.len(), "compressor: kv and score rows differ");
        let mut done = Vec::new();
        for (t, (kv, sc)) in kv.chunks(w).zip(score.chunks(w)).enumerate() {
            let p = pos0 + t;
            let ape = &self.ape[(p % self.ratio) * w..][..w];
            assert_eq!(st.kv.len(), p % self.ratio, "compressor state out of step at position {p}");
            st.kv.push(kv.to_vec());
            st.score.push(sc.iter().zip(ape).map(|(s, a)| s + a).collect());
            if (p + 1).is_multiple_of(self.ratio) {
                done.push((p / self.ratio, self.pool(st)));
                if self.overlap {
                    st.prev_kv = std::mem::take(&mut st.kv);
                    st.prev_score = std::mem::take(&mut st.score);
                } else {
                    st.kv.clear();
                    st.score.clear();
                }
            }
        }
        done
    }

    /// Softmax over the block's gate scores per channel, weighted sum of kv. With overlap the
    /// candidates of channel j are the previous block's channel j and this block's channel hd+j.
    fn pool(&self, st: &CompressorState) -> Vec<f32> {
        let hd = self.hd;
        (0..hd)
            .map(|j| {
                let mut cand: Vec<(f32, f32)> = Vec::with_capacity(2 * self.ratio);
                if self.overlap {
                    cand.extend(st.prev_kv.iter().zip(&st.prev_score).map(|(k, s)| (s[j], k[j])));
                    cand.extend(st.kv.iter().zip(&st.score).map(|(k, s)| (s[hd + j], k[hd + j])));
                } else {
                    cand.extend(st.kv.iter().zip(&st.score).map(|(k, s)| (s[j], k[j])));
                }
                let m = cand.iter().fold(f32::NEG_INFINITY, |a, c| a.max(c.0));
                let den: f32 = cand.iter().map(|c| (c.0 - m).exp()).sum();
                cand.iter().map(|c| (c.0 - m).exp() / den * c.1).sum()
            })
            .collect()
    }
}
