// sampling.cu — token choice from logits on the device (family "sampling").
//
// Mirrors engine/src/sampling.rs (the host sampler) on logits f32 [rows, vocab], one CTA per row,
// block = any multiple of 32 up to 1024 (the wrapper: 1024 for large vocabularies, smaller for
// small ones), no dynamic shared memory. Order of tokens everywhere: by value descending, ties
// to the lower id, with Rust's f32::total_cmp order on values (-0 < +0; NaNs sorted as
// total_cmp does), encoded as one distinct 64-bit key per token:
//   key = ord(bits(v)) << 32 | (0xFFFFFFFF - id)       (larger key = earlier)
//
// Kernels:
//   sampling_argmax(logits, rows, vocab, out u32 [rows])
//       greedy: the first id with the largest value under `>` (the host's argmax: ties, and
//       +0/-0, go to the lower id). NaN logits are read as -inf (the host's argmax would
//       return 0 for a NaN at id 0): unsupported input.
//   sampling_log_softmax(logits, rows, vocab, out_logp f32 [rows, vocab] or null, out_lse f32 [rows])
//       m = max, lse = f32(ln(sum_f64 exp(f64(l - m)))) + m, logp = l - lse (host's log_softmax).
//   sampling_topn(vals, rows, vocab, n, out u32 [rows, n])
//       the n largest ids of each row in the order above (the host's top_n; feed it the
//       log-softmax rows for the top logprobs, as the host does). n <= vocab.
//   sampling_gather(vals, rows, vocab, ids u32 [rows, n], n, out f32 [rows, n])
//       out[r][j] = vals[r][ids[r][j]] (NaN for an id >= vocab): the chosen token's and the top
//       alternatives' logprobs from the log-softmax rows, without downloading them.
//       Launch: 1-D over rows*n, any block (wrapper: 128).
//   sampling_sample(logits, rows, vocab, temperature f32 [rows], top_p f32 [rows], top_k u32 [rows],
//                   uniform f64 [rows], out u32 [rows])
//       the host's `sample` token for the uniform `u` the host's Rng::next_f64 would draw:
//       temperature 0 -> argmax; else candidates = top_k (0 = all) by the key order,
//       q = exp(f64((l - m) / T)), p = q / sum q, nucleus = shortest prefix with cumulative
//       p >= top_p (if top_p < 1), then the first token whose cumulative p exceeds u * sum(kept p)
//       (the last kept token if none). Prefix sums are never formed: each threshold (k-th key,
//       nucleus cut, drawn token) is found by bisection over the 64-bit key, 64 passes of a
//       CTA-wide count or f64 sum over the row each (~195 passes: the first version, kept as a
//       cross-check).
//   sampling_sample_radix(same arguments)
//       the same choice by 8-bit radix searches (~27 passes; masses in 2^-60 fixed point),
//       see its section below. The wrapper's default.
// Tolerance vs the host: argmax and top-n are exact. log_softmax: the f64 sum is reduced in a
//   different order (relative difference ~1e-16), so lse/logp equal the host's except when the
//   f64 log lies within ~1e-16 of an f32 rounding boundary: tests allow 1 ulp of lse.
//   sample: the host sums p sequentially in f64, we in a tree (bisect) or in 2^-60 fixed point
//   (radix); the chosen token equals the host's unless u*total or top_p falls within ~1e-15
//   (bisect) / ~V*1e-18 (radix, ~1e-13 at V = 129280) of a cumulative boundary. Tests: exact on
//   every draw (draws within 1e-12 of a boundary would be skipped; none occurred in 600+).
//   exp(f64) is CUDA's (<= 1 ulp) vs Rust's (glibc): same order of difference.

#define SMP_MAXW 32

__device__ __forceinline__ unsigned smp_ord(float v) {
    const unsigned u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float smp_unord(unsigned k) { return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k); }
__device__ __forceinline__ unsigned long long smp_key(float v, unsigned id) {
    return ((unsigned long long)smp_ord(v) << 32) | (unsigned long long)(0xffffffffu - id);
}
__device__ __forceinline__ unsigned smp_key_id(unsigned long long k) { return 0xffffffffu - (unsigned)(k & 0xffffffffull); }

__device__ __forceinline__ unsigned long long smp_shfl_u64(unsigned long long v, int o) {
    const unsigned lo = __shfl_xor_sync(0xffffffffu, (unsigned)v, o);
    const unsigned hi = __shfl_xor_sync(0xffffffffu, (unsigned)(v >> 32), o);
    return ((unsigned long long)hi << 32) | lo;
}

__device__ __forceinline__ unsigned long long smp_shfl_u64_down(unsigned long long v, int o) {
    const unsigned lo = __shfl_down_sync(0xffffffffu, (unsigned)v, o);
    const unsigned hi = __shfl_down_sync(0xffffffffu, (unsigned)(v >> 32), o);
    return ((unsigned long long)hi << 32) | lo;
}

struct SmpShared {
    double d[SMP_MAXW + 1];
    unsigned long long u[SMP_MAXW + 1];
    float f[SMP_MAXW + 1];
    unsigned i[SMP_MAXW + 1];
};

__device__ __forceinline__ double smp_block_sum_d(double v, SmpShared& sh) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) sh.d[warp] = v;
    __syncthreads();
    if (warp == 0) {
        double t = lane < nw ? sh.d[lane] : 0.0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
        if (lane == 0) sh.d[SMP_MAXW] = t;
    }
    __syncthreads();
    const double r = sh.d[SMP_MAXW];
    __syncthreads();
    return r;
}

// is_max: max, else min.
__device__ __forceinline__ unsigned long long smp_block_ext_u64(unsigned long long v, bool is_max, SmpShared& sh) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long t = smp_shfl_u64(v, o);
        v = is_max ? (t > v ? t : v) : (t < v ? t : v);
    }
    if (lane == 0) sh.u[warp] = v;
    __syncthreads();
    if (warp == 0) {
        unsigned long long t = lane < nw ? sh.u[lane] : (is_max ? 0ull : ~0ull);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const unsigned long long s = smp_shfl_u64(t, o);
            t = is_max ? (s > t ? s : t) : (s < t ? s : t);
        }
        if (lane == 0) sh.u[SMP_MAXW] = t;
    }
    __syncthreads();
    const unsigned long long r = sh.u[SMP_MAXW];
    __syncthreads();
    return r;
}

__device__ __forceinline__ unsigned smp_block_sum_u32(unsigned v, SmpShared& sh) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) sh.i[warp] = v;
    __syncthreads();
    if (warp == 0) {
        unsigned t = lane < nw ? sh.i[lane] : 0u;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
        if (lane == 0) sh.i[SMP_MAXW] = t;
    }
    __syncthreads();
    const unsigned r = sh.i[SMP_MAXW];
    __syncthreads();
    return r;
}

__device__ __forceinline__ unsigned long long smp_block_sum_u64(unsigned long long v, SmpShared& sh) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += smp_shfl_u64(v, o);
    if (lane == 0) sh.u[warp] = v;
    __syncthreads();
    if (warp == 0) {
        unsigned long long t = lane < nw ? sh.u[lane] : 0ull;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) t += smp_shfl_u64(t, o);
        if (lane == 0) sh.u[SMP_MAXW] = t;
    }
    __syncthreads();
    const unsigned long long r = sh.u[SMP_MAXW];
    __syncthreads();
    return r;
}

// (value, id) is better than (bv, bid): larger value, ties to the lower id.
__device__ __forceinline__ bool smp_better(float v, unsigned id, float bv, unsigned bid) { return v > bv || (v == bv && id < bid); }

// The host's argmax of one row, returned to every thread.
__device__ __forceinline__ unsigned smp_row_argmax(const float* l, unsigned vocab, SmpShared& sh) {
    float bv = -__int_as_float(0x7f800000);
    unsigned bid = 0xffffffffu;
    for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) {
        float v = l[i];
        if (v != v) v = -__int_as_float(0x7f800000);
        if (bid == 0xffffffffu || v > bv) {
            bv = v;
            bid = i;
        }
    }
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float v = __shfl_xor_sync(0xffffffffu, bv, o);
        const unsigned id = __shfl_xor_sync(0xffffffffu, bid, o);
        if (smp_better(v, id, bv, bid)) {
            bv = v;
            bid = id;
        }
    }
    if (lane == 0) {
        sh.f[warp] = bv;
        sh.i[warp] = bid;
    }
    __syncthreads();
    if (warp == 0) {
        bv = lane < nw ? sh.f[lane] : -__int_as_float(0x7f800000);
        bid = lane < nw ? sh.i[lane] : 0xffffffffu;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float v = __shfl_xor_sync(0xffffffffu, bv, o);
            const unsigned id = __shfl_xor_sync(0xffffffffu, bid, o);
            if (smp_better(v, id, bv, bid)) {
                bv = v;
                bid = id;
            }
        }
        if (lane == 0) sh.i[SMP_MAXW] = bid;
    }
    __syncthreads();
    const unsigned r = sh.i[SMP_MAXW];
    __syncthreads();
    return r;
}

extern "C" __global__ void __launch_bounds__(1024) sampling_argmax(const float* __restrict__ logits, unsigned rows, unsigned vocab,
                                                                    unsigned* __restrict__ out) {
    __shared__ SmpShared sh;
    const unsigned row = blockIdx.x;
    if (row >= rows) return;
    const unsigned id = smp_row_argmax(logits + (unsigned long long)row * vocab, vocab, sh);
    if (threadIdx.x == 0) out[row] = id;
}

extern "C" __global__ void __launch_bounds__(1024) sampling_log_softmax(const float* __restrict__ logits, unsigned rows, unsigned vocab,
                                                                         float* __restrict__ out_logp, float* __restrict__ out_lse) {
    __shared__ SmpShared sh;
    const unsigned row = blockIdx.x;
    if (row >= rows) return;
    const float* l = logits + (unsigned long long)row * vocab;
    // m = max (f32::max ignores NaN, as fmaxf does); as a total order key to reuse the u64 max.
    float m = -__int_as_float(0x7f800000);
    for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, l[i]);
    m = smp_unord((unsigned)(smp_block_ext_u64((unsigned long long)smp_ord(m), true, sh)));
    double s = 0.0;
    for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) s += exp((double)__fsub_rn(l[i], m));
    s = smp_block_sum_d(s, sh);
    const float lse = __fadd_rn((float)log(s), m);
    if (threadIdx.x == 0) out_lse[row] = lse;
    if (out_logp != nullptr) {
        float* o = out_logp + (unsigned long long)row * vocab;
        for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) o[i] = __fsub_rn(l[i], lse);
    }
}

extern "C" __global__ void __launch_bounds__(1024) sampling_topn(const float* __restrict__ vals, unsigned rows, unsigned vocab, unsigned n,
                                                                  unsigned* __restrict__ out) {
    __shared__ SmpShared sh;
    const unsigned row = blockIdx.x;
    if (row >= rows) return;
    const float* l = vals + (unsigned long long)row * vocab;
    unsigned long long bound = ~0ull;  // keys are < 2^64 - 1 (an id of 0 gives low bits 0xFFFFFFFF only with ord < max)
    bool first = true;
    for (unsigned j = 0; j < n && j < vocab; j++) {
        unsigned long long best = 0;
        bool any = false;
        for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) {
            const unsigned long long k = smp_key(l[i], i);
            if ((first || k < bound) && (!any || k > best)) {
                best = k;
                any = true;
            }
        }
        best = smp_block_ext_u64(best, true, sh);
        if (threadIdx.x == 0) out[(unsigned long long)row * n + j] = smp_key_id(best);
        bound = best;
        first = false;
    }
}

// sum over the row of p = exp(f64((l - m)/temp)) / div for tokens with key >= lo.
__device__ __forceinline__ double smp_psum(const float* l, unsigned vocab, float m, float temp, double div, unsigned long long lo,
                                           SmpShared& sh) {
    double s = 0.0;
    for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float v = l[i];
        if (smp_key(v, i) >= lo) s += exp((double)__fdiv_rn(__fsub_rn(v, m), temp)) / div;
    }
    return smp_block_sum_d(s, sh);
}

extern "C" __global__ void __launch_bounds__(1024)
    sampling_sample(const float* __restrict__ logits, unsigned rows, unsigned vocab, const float* __restrict__ temperature,
                    const float* __restrict__ top_p, const unsigned* __restrict__ top_k, const double* __restrict__ uniform,
                    unsigned* __restrict__ out) {
    __shared__ SmpShared sh;
    const unsigned row = blockIdx.x;
    if (row >= rows) return;
    const float* l = logits + (unsigned long long)row * vocab;
    const float temp = temperature[row];
    if (temp == 0.0f) {
        const unsigned id = smp_row_argmax(l, vocab, sh);
        if (threadIdx.x == 0) out[row] = id;
        return;
    }
    unsigned k = top_k[row];
    if (k == 0 || k > vocab) k = vocab;
    // The first candidate's logit m.
    unsigned long long kmax = 0;
    for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) {
        const unsigned long long key = smp_key(l[i], i);
        kmax = key > kmax ? key : kmax;
    }
    kmax = smp_block_ext_u64(kmax, true, sh);
    const float m = smp_unord((unsigned)(kmax >> 32));
    // Top-k: the k-th largest key (the largest K with count(key >= K) >= k).
    unsigned long long tk = 0;
    if (k < vocab) {
        for (int b = 63; b >= 0; b--) {
            const unsigned long long c = tk | (1ull << b);
            unsigned cnt = 0;
            for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) cnt += smp_key(l[i], i) >= c ? 1u : 0u;
            if (smp_block_sum_u32(cnt, sh) >= k) tk = c;
        }
    }
    const double total = smp_psum(l, vocab, m, temp, 1.0, tk, sh);
    // Nucleus: the largest K with sum(p, key >= max(K, tk)) >= top_p; 0 (keep all) if none.
    unsigned long long th = tk;
    const float tp = top_p[row];
    if (tp < 1.0f) {
        unsigned long long ans = 0;
        for (int b = 63; b >= 0; b--) {
            const unsigned long long c = ans | (1ull << b);
            if (smp_psum(l, vocab, m, temp, total, c > tk ? c : tk, sh) >= (double)tp) ans = c;
        }
        th = ans > tk ? ans : tk;
    }
    const double total2 = smp_psum(l, vocab, m, temp, total, th, sh);
    const double r = uniform[row] * total2;
    // The draw: the largest K with sum(p, key >= max(K, th)) > r.
    unsigned long long ans = 0;
    for (int b = 63; b >= 0; b--) {
        const unsigned long long c = ans | (1ull << b);
        if (smp_psum(l, vocab, m, temp, total, c > th ? c : th, sh) > r) ans = c;
    }
    if (ans == 0) {
        // Nothing exceeded r (rounding): the host takes the last kept token (the smallest key).
        unsigned long long mn = ~0ull;
        for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) {
            const unsigned long long key = smp_key(l[i], i);
            if (key >= th && key < mn) mn = key;
        }
        ans = smp_block_ext_u64(mn, false, sh);
    }
    if (threadIdx.x == 0) out[row] = smp_key_id(ans);
}

extern "C" __global__ void __launch_bounds__(1024) sampling_gather(const float* __restrict__ vals, unsigned rows, unsigned vocab,
                                                                    const unsigned* __restrict__ ids, unsigned n, float* __restrict__ out) {
    const unsigned long long gid = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (gid >= (unsigned long long)rows * n) return;
    const unsigned row = (unsigned)(gid / n);
    const unsigned id = ids[gid];
    out[gid] = id < vocab ? vals[(unsigned long long)row * vocab + id] : __uint_as_float(0x7fffffffu);
}

// ---- sampling_sample_radix: the same choice as sampling_sample in ~27 passes instead of ~195 ----
//
// Each threshold (the k-th key, the nucleus cut, the drawn token) is "the largest key K with
// F(keys >= K) >= target" (or > target), F a count or a probability mass over a base set of
// tokens. Found digit by digit (8 digits of 8 bits, most significant first): a pass histograms
// the base-set tokens whose key matches the prefix found so far by their next digit (u64 shared
// memory atomics: counts, or masses in fixed point p * 2^60, so the sums are exact integers and
// the result does not depend on the atomics' order), then one warp picks the digit. Masses in
// fixed point round each p to 2^-60 (~1e-18): the choice equals the host's unless top_p or the
// drawn u*total lies within ~V*1e-18 (+ the f64 rounding of the host's own sums, ~1e-16) of a
// cumulative boundary. Launch as sampling_sample (block a multiple of 32, >= 32, <= 1024).

#define SMP_FIX 1152921504606846976.0  // 2^60

struct SmpRadix {
    unsigned long long hist[256];
    unsigned long long pick[2];  // digit, F of the bins above it
};

// Warp 0 picks the largest bin b with above + sum_{b' >= b} hist[b'] >= target (strict: >).
// Returns (b, above + sum_{b' > b} hist) to every thread via shared memory; b = 256 if none.
__device__ __forceinline__ void smp_pick(SmpRadix& rx, unsigned long long above, unsigned long long target, bool strict) {
    if (threadIdx.x < 32) {
        const unsigned lane = threadIdx.x;
        unsigned long long local = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) local += rx.hist[lane * 8 + j];
        // suffix sum over lanes > lane
        unsigned long long incl = local;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned long long t = smp_shfl_u64_down(incl, o);
            if (lane + o < 32) incl += t;
        }
        const unsigned long long excl = incl - local;
        // Bins satisfying the condition form a suffix of this lane's bins in descending order.
        unsigned long long cum = above + excl;
        unsigned mask = 0;
#pragma unroll
        for (int j = 7; j >= 0; j--) {
            cum += rx.hist[lane * 8 + j];
            const bool ok = strict ? cum > target : cum >= target;
            mask |= (unsigned)ok << j;
        }
        const unsigned hits = __ballot_sync(0xffffffffu, mask != 0);
        if (hits == 0) {
            if (lane == 0) {
                rx.pick[0] = 256;
                rx.pick[1] = 0;
            }
        } else if (lane == 31 - __clz(hits)) {
            const int f = 31 - __clz(mask);
            unsigned long long fa = above + excl;
            for (int j = 7; j > f; j--) fa += rx.hist[lane * 8 + j];
            rx.pick[0] = lane * 8 + f;
            rx.pick[1] = fa;
        }
    }
    __syncthreads();
}

// The largest K >= base with F(key >= K, key >= base) >= target (strict: >), F summing `mass`
// (fixed-point p) or 1 (mass == false) per token; returns 0 if none.
__device__ __forceinline__ unsigned long long smp_radix_search(const float* l, unsigned vocab, float m, float temp, double total,
                                                               bool mass, unsigned long long base, unsigned long long target,
                                                               bool strict, SmpRadix& rx) {
    unsigned long long prefix = 0, above = 0;
#pragma unroll 1
    for (int d = 0; d < 8; d++) {
        const int shift = 56 - 8 * d;  // the digit's position
        for (unsigned b = threadIdx.x; b < 256; b += blockDim.x) rx.hist[b] = 0;
        __syncthreads();
        for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) {
            const float v = l[i];
            const unsigned long long key = smp_key(v, i);
            if (key < base) continue;
            if (d > 0 && (key >> (shift + 8)) != (prefix >> (shift + 8))) continue;
            unsigned long long w = 1;
            if (mass) w = (unsigned long long)(exp((double)__fdiv_rn(__fsub_rn(v, m), temp)) / total * SMP_FIX);
            atomicAdd(&rx.hist[(key >> shift) & 255ull], w);
        }
        __syncthreads();
        smp_pick(rx, above, target, strict);
        const unsigned long long digit = rx.pick[0];
        const unsigned long long new_above = rx.pick[1];
        __syncthreads();
        if (digit == 256) return 0;
        prefix |= digit << shift;
        above = new_above;
    }
    return prefix;
}

extern "C" __global__ void __launch_bounds__(1024)
    sampling_sample_radix(const float* __restrict__ logits, unsigned rows, unsigned vocab, const float* __restrict__ temperature,
                          const float* __restrict__ top_p, const unsigned* __restrict__ top_k, const double* __restrict__ uniform,
                          unsigned* __restrict__ out) {
    __shared__ SmpShared sh;
    __shared__ SmpRadix rx;
    const unsigned row = blockIdx.x;
    if (row >= rows) return;
    const float* l = logits + (unsigned long long)row * vocab;
    const float temp = temperature[row];
    if (temp == 0.0f) {
        const unsigned id = smp_row_argmax(l, vocab, sh);
        if (threadIdx.x == 0) out[row] = id;
        return;
    }
    unsigned k = top_k[row];
    if (k == 0 || k > vocab) k = vocab;
    unsigned long long kmax = 0;
    for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) {
        const unsigned long long key = smp_key(l[i], i);
        kmax = key > kmax ? key : kmax;
    }
    kmax = smp_block_ext_u64(kmax, true, sh);
    const float m = smp_unord((unsigned)(kmax >> 32));
    // Top-k: the k-th largest key.
    const unsigned long long tk = k < vocab ? smp_radix_search(l, vocab, m, temp, 1.0, false, 0, k, false, rx) : 0ull;
    const double total = smp_psum(l, vocab, m, temp, 1.0, tk, sh);
    // Nucleus.
    unsigned long long th = tk;
    const float tp = top_p[row];
    if (tp < 1.0f) {
        const unsigned long long target = (unsigned long long)((double)tp * SMP_FIX);
        const unsigned long long ans = smp_radix_search(l, vocab, m, temp, total, true, tk, target, false, rx);
        th = ans > tk ? ans : tk;
    }
    // Kept mass (fixed point, exact integer sum), then the draw.
    unsigned long long kept = 0;
    for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float v = l[i];
        if (smp_key(v, i) >= th) kept += (unsigned long long)(exp((double)__fdiv_rn(__fsub_rn(v, m), temp)) / total * SMP_FIX);
    }
    kept = smp_block_sum_u64(kept, sh);
    const unsigned long long r = (unsigned long long)(uniform[row] * (double)kept);
    unsigned long long ans = smp_radix_search(l, vocab, m, temp, total, true, th, r, true, rx);
    if (ans == 0) {
        unsigned long long mn = ~0ull;
        for (unsigned i = threadIdx.x; i < vocab; i += blockDim.x) {
            const unsigned long long key = smp_key(l[i], i);
            if (key >= th && key < mn) mn = key;
        }
        ans = smp_block_ext_u64(mn, false, sh);
    }
    if (threadIdx.x == 0) out[row] = smp_key_id(ans);
}
