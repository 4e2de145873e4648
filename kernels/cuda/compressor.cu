// compressor.cu — the KV compressor's pooling + RMSNorm and its partial-block state (prefill
// chunks of any length at any position, and single-token decode), for the attention
// compressor (hd 512) and the indexer's (hd 128) alike.
//
// Mirrors `dsv4_reference::model::compressor::Compressor::feed` + `pool` followed by
// `rms_norm_inplace(entry, norm, eps)`. The projections kv = wkv·x and score = wgate·x (f32,
// [*, w] with w = coff·hd, coff = 2 with overlap (ratio 4) else 1) come in as step rows; RoPE and
// the FP8/FP4 simulation of the entries are other families' kernels, run on `out` afterwards.
//
// State: two rings of raw rows, slot = position mod R, R = 2·ratio with overlap else ratio:
//   kv_ring [R, w]   kv rows of the positions before the chunk that a later entry still needs
//   sc_ring [R, w]   their gate scores with ape already added (score + ape[p mod ratio]),
//                    the exact numbers of the reference's CompressorState.score
// Before a chunk at pos0 the rings hold positions max(0, pos0-R) .. pos0-1 (the current partial
// block and, with overlap, the previous complete block); nothing else is needed: block b (the
// positions b·ratio .. b·ratio+ratio-1) completes inside the chunk iff
// pos0/ratio <= b < (pos0+t_len)/ratio, and reads positions >= (b-1)·ratio >= pos0-2·ratio+1.
//
// compressor_pool_norm: one CTA per completed block b = b_first + blockIdx.x, written to out
// row out_row0 + blockIdx.x. Channel j's candidates in the reference's order: with overlap the
// previous block's positions (if b > 0) at channel j, then this block's at channel hd+j;
// without, this block's at channel j. A candidate at position q >= pos0 reads step row
// row0 + q - pos0 (score + ape[q mod ratio]), else ring slot q mod R.
//   m = max(score), den = Σ e^{s-m}, v_j = Σ (e^{s-m} / den)·kv    (same order as the reference)
//   then out_j = norm_j · (v_j · 1/sqrt(Σ v² / hd + eps)).
// Launch: grid n_blocks, block 128 (threads stride over channels).
//
// compressor_ring_update: writes the chunk's last min(t_len, R) rows into the rings (scores +
// ape). Launch after compressor_pool_norm of the same chunk. grid min(t_len, R), block 128.
//
// Tolerance vs the reference: expf vs the host exp (<= 2 ulp) and the sum of squares reduced
// in a tree instead of in order: ~1e-5 relative on the entries (the division by den and the
// summation order of the pooled value match the reference exactly).

#define CMP_THREADS 128

__device__ __forceinline__ void cmp_cand(const float* __restrict__ kv, const float* __restrict__ score,
                                         const float* __restrict__ kv_ring, const float* __restrict__ sc_ring,
                                         const float* __restrict__ ape, unsigned q, unsigned c, unsigned row0, unsigned pos0,
                                         unsigned ratio, unsigned w, unsigned ring_rows, float& s, float& k) {
    if (q >= pos0) {
        size_t i = (size_t)(row0 + (q - pos0)) * w + c;
        k = kv[i];
        s = __fadd_rn(score[i], ape[(size_t)(q % ratio) * w + c]);
    } else {
        size_t i = (size_t)(q % ring_rows) * w + c;
        k = kv_ring[i];
        s = sc_ring[i];
    }
}

extern "C" __global__ void __launch_bounds__(CMP_THREADS) compressor_pool_norm(
    const float* __restrict__ kv, const float* __restrict__ score, const float* __restrict__ kv_ring,
    const float* __restrict__ sc_ring, const float* __restrict__ ape, const float* __restrict__ norm, float* __restrict__ out,
    unsigned row0, unsigned pos0, unsigned ratio, unsigned hd, unsigned overlap, unsigned b_first, unsigned out_row0,
    float eps) {
    const unsigned b = b_first + blockIdx.x;
    const unsigned w = overlap ? 2u * hd : hd;
    const unsigned ring_rows = overlap ? 2u * ratio : ratio;
    float* o = out + (size_t)(out_row0 + blockIdx.x) * hd;
    // Candidate ranges: [q0, q1) at channel offset 0 (previous block, overlap only) and
    // [b·ratio, b·ratio+ratio) at channel offset `coff`.
    const unsigned cur0 = b * ratio;
    const unsigned prev0 = (overlap && b > 0) ? cur0 - ratio : cur0;
    const unsigned coff = overlap ? hd : 0u;

    float ss = 0.f;
    for (unsigned j = threadIdx.x; j < hd; j += CMP_THREADS) {
        float s, k;
        float m = -INFINITY;
        for (unsigned q = prev0; q < cur0 + ratio; ++q) {
            cmp_cand(kv, score, kv_ring, sc_ring, ape, q, q < cur0 ? j : coff + j, row0, pos0, ratio, w, ring_rows, s, k);
            m = fmaxf(m, s);
        }
        float den = -0.f;
        for (unsigned q = prev0; q < cur0 + ratio; ++q) {
            cmp_cand(kv, score, kv_ring, sc_ring, ape, q, q < cur0 ? j : coff + j, row0, pos0, ratio, w, ring_rows, s, k);
            den = __fadd_rn(den, expf(__fsub_rn(s, m)));
        }
        float v = -0.f;
        for (unsigned q = prev0; q < cur0 + ratio; ++q) {
            cmp_cand(kv, score, kv_ring, sc_ring, ape, q, q < cur0 ? j : coff + j, row0, pos0, ratio, w, ring_rows, s, k);
            v = __fadd_rn(v, __fmul_rn(__fdiv_rn(expf(__fsub_rn(s, m)), den), k));
        }
        o[j] = v;
        ss = __fmaf_rn(v, v, ss);
    }
    // Block reduce Σ v².
    __shared__ float red[CMP_THREADS / 32];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    if ((threadIdx.x & 31u) == 0) red[threadIdx.x >> 5] = ss;
    __syncthreads();
    float tot = 0.f;
#pragma unroll
    for (int i = 0; i < CMP_THREADS / 32; ++i) tot += red[i];
    const float r = __fdiv_rn(1.f, __fsqrt_rn(__fadd_rn(__fdiv_rn(tot, (float)hd), eps)));
    for (unsigned j = threadIdx.x; j < hd; j += CMP_THREADS) o[j] = __fmul_rn(norm[j], __fmul_rn(o[j], r));
}

extern "C" __global__ void __launch_bounds__(CMP_THREADS) compressor_ring_update(
    float* __restrict__ kv_ring, float* __restrict__ sc_ring, const float* __restrict__ kv, const float* __restrict__ score,
    const float* __restrict__ ape, unsigned row0, unsigned pos0, unsigned t_len, unsigned ratio, unsigned hd,
    unsigned overlap) {
    const unsigned w = overlap ? 2u * hd : hd;
    const unsigned ring_rows = overlap ? 2u * ratio : ratio;
    const unsigned n = t_len < ring_rows ? t_len : ring_rows;
    if (blockIdx.x >= n) return;
    const unsigned t = t_len - n + blockIdx.x;
    const unsigned q = pos0 + t;
    const size_t src = (size_t)(row0 + t) * w;
    const size_t dst = (size_t)(q % ring_rows) * w;
    const float* a = ape + (size_t)(q % ratio) * w;
    for (unsigned c = threadIdx.x; c < w; c += CMP_THREADS) {
        kv_ring[dst + c] = kv[src + c];
        sc_ring[dst + c] = __fadd_rn(score[src + c], a[c]);
    }
}
