// indexer.cu — the lightning indexer's scores and top-k, and the Walsh-Hadamard transform.
//
// Mirrors the scoring and selection of `dsv4_reference::model::Model::indexer` (the index
// queries, weights and keys are other kernels' outputs; the keys come from the compressor
// family plus rope / hadamard / FP4 simulation) and `ops::hadamard::hadamard_inplace`.
//
// Layouts (f32 row-major unless said; "step rows" as in attention.cu: the chunk is rows
// row0 .. row0+t_len at positions pos0 .. pos0+t_len):
//   q      [*, nh*ihd]   step rows: index queries (RoPE, Hadamard, FP4-simulated)
//   w      [*, nh]       step rows: weights_proj·x, not yet scaled (w_scale = ihd^-½·nh^-½)
//   keys   [cap, ihd]    the sequence's index keys (row = compressed entry)
//   scores [t_len, n_stride]  scratch; row t holds entries 0 .. n_t-1, n_t = (pos0+t+1)/ratio
//   out    [*, topk] i32 step rows: the selected entries, best first, -1 past k = min(topk, n_t)
//
// indexer_scores: score[t][e] = Σ_h (w_h·w_scale)·relu(q_h · k_e), evaluated exactly as the
// reference does (sequential f32 sums starting from -0.0 like Rust's f32 Sum, no FMA
// contraction, relu(d) = d > 0 ? d : +0.0 like f32::max(d, 0.0) — which leaves the sign for
// d = -0.0 unspecified, the only case that may differ), so the scores are bit-identical.
// Launch: grid (ceil(n_max/128), t_len), block 128 (one entry per thread), dynamic shared
// (nh*ihd + nh)*4 bytes (q and w of the token).
//
// indexer_topk: per token, the k largest scores in f32::total_cmp order, ties to the lower
// entry (the reference's stable descending sort = `ops::moe::topk_indices`), written best first.
// Radix select (4 × 8-bit passes over the order-preserving u32 key) finds the k-th key; every
// entry above it plus the lowest-indexed entries equal to it are gathered (64-bit packed
// (key, ~index), unique) and bitonic-sorted descending in shared memory. k <= 2048.
// Launch: grid t_len, block 256.
//
// indexer_hadamard: in place on `rows` consecutive rows of n (a power of two <= 2048):
// Sylvester butterflies h = 1, 2, 4, … (a+b, a-b), then × scale (the host passes
// 1/sqrt(n) computed in f32 as the reference does): bit-identical to the reference.
// Launch: grid rows, block 128.
//
// Tolerance vs the reference: none — scores, selections and the transform are exact.

#define IDX_SCORE_THREADS 128
#define IDX_TOPK_THREADS 256
#define IDX_TOPK_MAX 2048
#define IDX_HAD_MAX 2048

extern "C" __global__ void __launch_bounds__(IDX_SCORE_THREADS) indexer_scores(
    const float* __restrict__ q, const float* __restrict__ w, const float* __restrict__ keys, float* __restrict__ scores,
    unsigned row0, unsigned pos0, unsigned ratio, unsigned nh, unsigned ihd, unsigned n_stride, float w_scale) {
    extern __shared__ float idx_smem[];
    float* qs = idx_smem;            // [nh*ihd]
    float* ws = idx_smem + nh * ihd;  // [nh]
    const unsigned t = blockIdx.y;
    const unsigned row = row0 + t;
    const unsigned n = (pos0 + t + 1) / ratio;
    const unsigned base = blockIdx.x * IDX_SCORE_THREADS;
    if (base >= n) return;  // whole block idle (uniform: no barrier skipped by part of it)
    for (unsigned i = threadIdx.x; i < nh * ihd; i += IDX_SCORE_THREADS) qs[i] = q[(size_t)row * nh * ihd + i];
    for (unsigned i = threadIdx.x; i < nh; i += IDX_SCORE_THREADS) ws[i] = __fmul_rn(w[(size_t)row * nh + i], w_scale);
    __syncthreads();
    const unsigned e = base + threadIdx.x;
    if (e >= n) return;
    const float* k = keys + (size_t)e * ihd;
    float sc = -0.f;
    for (unsigned h = 0; h < nh; ++h) {
        const float* qh = qs + h * ihd;
        float d = -0.f;
        for (unsigned c = 0; c < ihd; ++c) d = __fadd_rn(d, __fmul_rn(qh[c], k[c]));
        const float r = d > 0.f ? d : 0.f;
        sc = __fadd_rn(sc, __fmul_rn(ws[h], r));
    }
    scores[(size_t)t * n_stride + e] = sc;
}

// f32::total_cmp order as an unsigned key.
__device__ __forceinline__ unsigned idx_okey(float f) {
    unsigned b = __float_as_uint(f);
    return b ^ ((unsigned)((int)b >> 31) | 0x80000000u);
}

extern "C" __global__ void __launch_bounds__(IDX_TOPK_THREADS) indexer_topk(const float* __restrict__ scores,
                                                                            int* __restrict__ out, unsigned row0,
                                                                            unsigned pos0, unsigned ratio, unsigned topk,
                                                                            unsigned n_stride) {
    __shared__ unsigned long long sel[IDX_TOPK_MAX];
    __shared__ unsigned hist[256];
    __shared__ unsigned warp_cnt[IDX_TOPK_THREADS / 32];
    __shared__ unsigned s_prefix, s_remaining, s_gt;
    const unsigned t = blockIdx.x;
    const unsigned tid = threadIdx.x;
    const unsigned lane = tid & 31u, warp = tid >> 5;
    const unsigned n = (pos0 + t + 1) / ratio;
    const unsigned k = topk < n ? topk : n;
    const float* sc = scores + (size_t)t * n_stride;
    int* o = out + (size_t)(row0 + t) * topk;

    if (k > 0) {
        // Radix select of the k-th largest key.
        unsigned prefix = 0, mask = 0, remaining = k;
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (unsigned i = tid; i < 256; i += IDX_TOPK_THREADS) hist[i] = 0;
            __syncthreads();
            for (unsigned i = tid; i < n; i += IDX_TOPK_THREADS) {
                unsigned key = idx_okey(sc[i]);
                if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
            }
            __syncthreads();
            if (tid == 0) {
                unsigned cum = 0;
                int bin = 255;
                for (; bin > 0; --bin) {
                    if (cum + hist[bin] >= remaining) break;
                    cum += hist[bin];
                }
                s_prefix = prefix | ((unsigned)bin << shift);
                s_remaining = remaining - cum;
            }
            __syncthreads();
            prefix = s_prefix;
            remaining = s_remaining;
            mask |= 255u << shift;
            __syncthreads();
        }
        // prefix = the k-th key; take all keys above it and the `remaining` lowest-indexed equal ones.
        const unsigned n_gt = k - remaining;
        if (tid == 0) s_gt = 0;
        __syncthreads();
        for (unsigned i = tid; i < n; i += IDX_TOPK_THREADS) {
            unsigned key = idx_okey(sc[i]);
            if (key > prefix) {
                unsigned slot = atomicAdd(&s_gt, 1u);
                sel[slot] = ((unsigned long long)key << 32) | (0xffffffffu - i);
            }
        }
        unsigned taken = 0;
        for (unsigned base = 0; base < n && taken < remaining; base += IDX_TOPK_THREADS) {
            const unsigned i = base + tid;
            const bool eq = i < n && idx_okey(sc[i]) == prefix;
            const unsigned bal = __ballot_sync(0xffffffffu, eq);
            if (lane == 0) warp_cnt[warp] = __popc(bal);
            __syncthreads();
            unsigned before = taken, total = 0;
            for (unsigned wi = 0; wi < IDX_TOPK_THREADS / 32; ++wi) {
                if (wi < warp) before += warp_cnt[wi];
                total += warp_cnt[wi];
            }
            before += __popc(bal & ((1u << lane) - 1u));
            if (eq && before < remaining) sel[n_gt + before] = ((unsigned long long)prefix << 32) | (0xffffffffu - i);
            taken += total;
            __syncthreads();
        }
        // Bitonic sort, descending, over the next power of two (padding 0 sorts last).
        unsigned pw = 1;
        while (pw < k) pw <<= 1;
        for (unsigned i = k + tid; i < pw; i += IDX_TOPK_THREADS) sel[i] = 0ull;
        __syncthreads();
        for (unsigned size = 2; size <= pw; size <<= 1) {
            for (unsigned stride = size >> 1; stride > 0; stride >>= 1) {
                for (unsigned i = tid; i < pw / 2; i += IDX_TOPK_THREADS) {
                    const unsigned lo = 2 * i - (i & (stride - 1));
                    const unsigned hi = lo + stride;
                    const bool desc = (lo & size) == 0;
                    const unsigned long long a = sel[lo], b = sel[hi];
                    if ((a < b) == desc) {
                        sel[lo] = b;
                        sel[hi] = a;
                    }
                }
                __syncthreads();
            }
        }
    }
    for (unsigned j = tid; j < topk; j += IDX_TOPK_THREADS)
        o[j] = j < k ? (int)(0xffffffffu - (unsigned)(sel[j] & 0xffffffffull)) : -1;
}

extern "C" __global__ void __launch_bounds__(128) indexer_hadamard(float* __restrict__ x, unsigned n, float scale) {
    __shared__ float buf[IDX_HAD_MAX];
    float* row = x + (size_t)blockIdx.x * n;
    for (unsigned i = threadIdx.x; i < n; i += blockDim.x) buf[i] = row[i];
    __syncthreads();
    for (unsigned h = 1; h < n; h <<= 1) {
        for (unsigned i = threadIdx.x; i < n / 2; i += blockDim.x) {
            const unsigned j = (i / h) * 2 * h + (i % h);
            const float a = buf[j], b = buf[j + h];
            buf[j] = __fadd_rn(a, b);
            buf[j + h] = __fsub_rn(a, b);
        }
        __syncthreads();
    }
    for (unsigned i = threadIdx.x; i < n; i += blockDim.x) row[i] = __fmul_rn(buf[i], scale);
}
