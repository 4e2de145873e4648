// mhc.cu — manifold-constrained hyper-connections (family "mhc").
//
// Mirrors dsv4_reference::ops::mhc::{hc_pre, hc_post, hc_head} and the RMSNorm that follows
// hc_pre (the sublayer's attn_norm/ffn_norm) or hc_head (the final norm), as Model::sublayer and
// Model::head_logits chain them. Per token, with X = the token's nc streams [nc, d] flattened
// to v [nc*d]:
//   r      = 1/sqrt(mean(v^2) + norm_eps)
//   mix_m  = (fn[m] . v) * r                       m < M (M = (2+nc)*nc for pre, nc for head)
//   pre_j  = sigmoid(mix_j*scale0 + base_j) + hc_eps
//   post_j = 2*sigmoid(mix_{nc+j}*scale1 + base_{nc+j})
//   C      = Sinkhorn(mix_{2nc..}*scale2 + base_{2nc..}) (row softmax + eps, column normalise,
//            then iters-1 times rows then columns; exactly the reference's order)
//   y      = sum_j pre_j * X[j]                     [d]
//   out    = norm_w * (y * 1/sqrt(mean(y^2) + norm_eps))
// Kernels (all f32, row-major; nc <= 8; no dynamic shared memory). hc_pre and hc_head run in two
// launches so that the (fn . v) dot products, which stream the whole fn (1.5 MiB per site in the
// model) for a handful of tokens, spread over many CTAs:
//   mhc_mix_partial(x [*, K], row_ids u32 [T] or null, fn [M, K], part [T, S, M], T, K, M, chunk)
//       K = nc*d, S = ceil(K / chunk); part[t][s][m] = sum over k in chunk s of fn[m][k]*v_t[k],
//       v_t = x row (row_ids ? row_ids[t] : t). grid = (M, S, ceil(T / 4)), block = 256 (>= 128)
//       (MHC_TT = 4 tokens per CTA share each fn load).
//   mhc_pre_norm(x [T, nc*d], part [T, S, M], S, base [M], scale [3], norm_w [d],
//                y [T, d], mix [T, nc + nc*nc] (post ‖ comb, comb[j*nc+k]), nc, d, iters,
//                norm_eps, hc_eps)          M = (2+nc)*nc; grid = T, block <= 256 (wrapper 256)
//       mix_m = (sum_s part[t][s][m], in s order) * r, then the rest of hc_pre and the norm.
//   mhc_head_norm(x [*, nc*d], row_ids u32 [R] (output row i reads x row row_ids[i]),
//                 part [R, S, nc], S, base [nc], scale [1], norm_w [d], y [R, d], nc, d,
//                 norm_eps, hc_eps)                                 grid = R, block <= 256
//   mhc_post(f [T, d], x [T, nc*d], mix [T, nc + nc*nc], out [T, nc*d], T, nc, d)
//       out[k][i] = post_k*f[i] + sum_j C[j,k]*x[j][i]; one thread per (t, i) computes all nc
//       outputs after reading all nc inputs, so out == x (in place) is allowed.
//       grid = ceil(T*d / block), any block <= 256 (wrapper: 256).
// Tolerances vs the reference: the (fn . v) dot products (length nc*d: per-thread strided sums
// within 2048-input chunks, a fixed shuffle tree per chunk, then the chunks in order) and the two
// sums of squares (per-thread sums, tree) are reduced in parallel where the reference sums
// sequentially: mix differs by ~1e-7 of sum|fn*v|*r, which the sigmoids damp and Sinkhorn passes
// through (its nc x nc maths runs on one thread in the reference's exact order; expf has <= 2 ulp
// error vs Rust's exp). y and out: the weighted stream sum and the final products are rounded
// exactly as in the reference (no FMA contraction), so their error is the mix error plus the
// norm's (measured at nc 4, d 4096: mix 2e-6 abs, y 1e-5 of (|y| + rms(y))). hc_post is
// bit-exact given the mix. Tests: mix 2e-5 abs, y 2e-5 of (|y| + rms(y)), hc_post exact.
// All results are deterministic (no atomics; fixed reduction orders for the fixed block sizes).

#define MHC_MAX_NC 8
#define MHC_MAX_MIX ((2 + MHC_MAX_NC) * MHC_MAX_NC)

__device__ __forceinline__ float mhc_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the CTA, returned to every thread. `sh` holds 33 floats.
__device__ __forceinline__ float mhc_block_sum(float v, float* sh) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned nwarps = blockDim.x >> 5;
    v = mhc_warp_sum(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float t = lane < nwarps ? sh[lane] : 0.0f;
        t = mhc_warp_sum(t);
        if (lane == 0) sh[32] = t;
    }
    __syncthreads();
    const float r = sh[32];
    __syncthreads();
    return r;
}

__device__ __forceinline__ float mhc_sigmoid(float x) { return __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-x))); }

// mix[m] = (sum_s part[s][m]) * r for m < nmix, into shared memory, with r = 1/sqrt(mean(v^2)+eps).
__device__ __forceinline__ void mhc_mixes(const float* v, const float* __restrict__ part, unsigned nsplit, unsigned nmix, unsigned len,
                                          float eps, float* mix, float* sh) {
    float ss = 0.0f;
    for (unsigned i = threadIdx.x; i < len; i += blockDim.x) {
        const float a = v[i];
        ss = __fadd_rn(ss, __fmul_rn(a, a));
    }
    ss = mhc_block_sum(ss, sh);
    const float r = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, (float)len), eps)));
    for (unsigned m = threadIdx.x; m < nmix; m += blockDim.x) {
        float acc = 0.0f;
        for (unsigned s = 0; s < nsplit; s++) acc = __fadd_rn(acc, part[s * nmix + m]);
        mix[m] = __fmul_rn(acc, r);
    }
    __syncthreads();
}

#define MHC_TT 4

extern "C" __global__ void __launch_bounds__(256) mhc_mix_partial(const float* __restrict__ x, const unsigned* __restrict__ row_ids,
                                                                   const float* __restrict__ fn, float* __restrict__ part, unsigned T,
                                                                   unsigned K, unsigned M, unsigned chunk) {
    __shared__ float sh[MHC_TT][33];
    const unsigned m = blockIdx.x, s = blockIdx.y, t0 = blockIdx.z * MHC_TT;
    const unsigned S = gridDim.y;
    const unsigned k0 = s * chunk;
    const unsigned k1 = min(K, k0 + chunk);
    const float* w = fn + (unsigned long long)m * K;
    const float* v[MHC_TT];
    float acc[MHC_TT];
#pragma unroll
    for (unsigned tt = 0; tt < MHC_TT; tt++) {
        const unsigned t = min(t0 + tt, T - 1);  // rows past T repeat the last one (not stored)
        const unsigned row = row_ids != nullptr ? row_ids[t] : t;
        v[tt] = x + (unsigned long long)row * K;
        acc[tt] = 0.0f;
    }
    for (unsigned k = k0 + threadIdx.x; k < k1; k += blockDim.x) {
        const float wk = w[k];
#pragma unroll
        for (unsigned tt = 0; tt < MHC_TT; tt++) acc[tt] = __fadd_rn(acc[tt], __fmul_rn(wk, v[tt][k]));
    }
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
#pragma unroll
    for (unsigned tt = 0; tt < MHC_TT; tt++) {
        const float a = mhc_warp_sum(acc[tt]);
        if (lane == 0) sh[tt][warp] = a;
    }
    __syncthreads();
    if (warp < MHC_TT) {
        float a = lane < nwarps ? sh[warp][lane] : 0.0f;
        a = mhc_warp_sum(a);
        const unsigned t = t0 + warp;
        if (lane == 0 && t < T) part[((unsigned long long)t * S + s) * M + m] = a;
    }
}

// y = sum_j pre_j X[j] (written to yr), then yr = norm_w * (y * r). Each thread touches only
// its own elements of yr.
__device__ __forceinline__ void mhc_weighted_norm(const float* v, const float* pre, unsigned nc, unsigned d,
                                                  const float* __restrict__ norm_w, float eps, float* yr, float* sh) {
    float ss = 0.0f;
    for (unsigned i = threadIdx.x; i < d; i += blockDim.x) {
        float acc = -0.0f;
        for (unsigned j = 0; j < nc; j++) acc = __fadd_rn(acc, __fmul_rn(pre[j], v[(unsigned long long)j * d + i]));
        yr[i] = acc;
        ss = __fadd_rn(ss, __fmul_rn(acc, acc));
    }
    ss = mhc_block_sum(ss, sh);
    const float r = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, (float)d), eps)));
    for (unsigned i = threadIdx.x; i < d; i += blockDim.x) yr[i] = __fmul_rn(norm_w[i], __fmul_rn(yr[i], r));
}

extern "C" __global__ void __launch_bounds__(256)
    mhc_pre_norm(const float* __restrict__ x, const float* __restrict__ part, unsigned nsplit, const float* __restrict__ base, const float* __restrict__ scale,
                 const float* __restrict__ norm_w, float* __restrict__ y, float* __restrict__ mix_out, unsigned nc, unsigned d,
                 unsigned iters, float norm_eps, float hc_eps) {
    __shared__ float sh[33];
    __shared__ float mix[MHC_MAX_MIX];
    __shared__ float pre[MHC_MAX_NC];
    __shared__ float outm[MHC_MAX_NC + MHC_MAX_NC * MHC_MAX_NC];
    if (nc > MHC_MAX_NC || nc == 0) return;
    const unsigned t = blockIdx.x;
    const unsigned len = nc * d;
    const float* v = x + (unsigned long long)t * len;
    const unsigned nmix = (2 + nc) * nc;
    mhc_mixes(v, part + (unsigned long long)t * nsplit * nmix, nsplit, nmix, len, norm_eps, mix, sh);
    if (threadIdx.x == 0) {
        for (unsigned i = 0; i < nc; i++) pre[i] = __fadd_rn(mhc_sigmoid(__fadd_rn(__fmul_rn(mix[i], scale[0]), base[i])), hc_eps);
        for (unsigned i = 0; i < nc; i++)
            outm[i] = __fmul_rn(2.0f, mhc_sigmoid(__fadd_rn(__fmul_rn(mix[nc + i], scale[1]), base[nc + i])));
        float* c = outm + nc;
        for (unsigned i = 0; i < nc * nc; i++) c[i] = __fadd_rn(__fmul_rn(mix[2 * nc + i], scale[2]), base[2 * nc + i]);
        // Row softmax + eps.
        for (unsigned j = 0; j < nc; j++) {
            float* row = c + j * nc;
            float m = -__int_as_float(0x7f800000);
            for (unsigned k = 0; k < nc; k++) m = fmaxf(m, row[k]);
            float s = -0.0f;
            for (unsigned k = 0; k < nc; k++) {
                row[k] = expf(__fsub_rn(row[k], m));
                s = __fadd_rn(s, row[k]);
            }
            for (unsigned k = 0; k < nc; k++) row[k] = __fadd_rn(__fdiv_rn(row[k], s), hc_eps);
        }
        // Columns once, then (iters-1) times rows then columns.
        for (unsigned it = 0; it < (iters > 0 ? iters : 1u); it++) {
            if (it > 0) {
                for (unsigned j = 0; j < nc; j++) {
                    float* row = c + j * nc;
                    float s = -0.0f;
                    for (unsigned k = 0; k < nc; k++) s = __fadd_rn(s, row[k]);
                    const float den = __fadd_rn(s, hc_eps);
                    for (unsigned k = 0; k < nc; k++) row[k] = __fdiv_rn(row[k], den);
                }
            }
            for (unsigned k = 0; k < nc; k++) {
                float s = -0.0f;
                for (unsigned j = 0; j < nc; j++) s = __fadd_rn(s, c[j * nc + k]);
                const float den = __fadd_rn(s, hc_eps);
                for (unsigned j = 0; j < nc; j++) c[j * nc + k] = __fdiv_rn(c[j * nc + k], den);
            }
        }
    }
    __syncthreads();
    const unsigned mw = nc + nc * nc;
    for (unsigned i = threadIdx.x; i < mw; i += blockDim.x) mix_out[(unsigned long long)t * mw + i] = outm[i];
    mhc_weighted_norm(v, pre, nc, d, norm_w, norm_eps, y + (unsigned long long)t * d, sh);
}

extern "C" __global__ void __launch_bounds__(256)
    mhc_head_norm(const float* __restrict__ x, const unsigned* __restrict__ row_ids, const float* __restrict__ part, unsigned nsplit,
                  const float* __restrict__ base, const float* __restrict__ scale, const float* __restrict__ norm_w, float* __restrict__ y,
                  unsigned nc, unsigned d, float norm_eps, float hc_eps) {
    __shared__ float sh[33];
    __shared__ float mix[MHC_MAX_MIX];
    __shared__ float pre[MHC_MAX_NC];
    if (nc > MHC_MAX_NC || nc == 0) return;
    const unsigned len = nc * d;
    const float* v = x + (unsigned long long)row_ids[blockIdx.x] * len;
    mhc_mixes(v, part + (unsigned long long)blockIdx.x * nsplit * nc, nsplit, nc, len, norm_eps, mix, sh);
    if (threadIdx.x < nc) {
        const unsigned i = threadIdx.x;
        pre[i] = __fadd_rn(mhc_sigmoid(__fadd_rn(__fmul_rn(mix[i], scale[0]), base[i])), hc_eps);
    }
    __syncthreads();
    mhc_weighted_norm(v, pre, nc, d, norm_w, norm_eps, y + (unsigned long long)blockIdx.x * d, sh);
}

extern "C" __global__ void __launch_bounds__(256) mhc_post(const float* __restrict__ f, const float* x, const float* __restrict__ mix,
                                                            float* out, unsigned T, unsigned nc, unsigned d) {
    const unsigned long long gid = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (gid >= (unsigned long long)T * d || nc > MHC_MAX_NC) return;
    const unsigned t = (unsigned)(gid / d);
    const unsigned i = (unsigned)(gid - (unsigned long long)t * d);
    const float* m = mix + (unsigned long long)t * (nc + nc * nc);
    const float* xt = x + (unsigned long long)t * nc * d;
    float* ot = out + (unsigned long long)t * nc * d;
    float xv[MHC_MAX_NC];
#pragma unroll
    for (unsigned j = 0; j < MHC_MAX_NC; j++)
        if (j < nc) xv[j] = xt[(unsigned long long)j * d + i];
    const float fi = f[gid];
#pragma unroll
    for (unsigned k = 0; k < MHC_MAX_NC; k++) {
        if (k < nc) {
            float s = -0.0f;
#pragma unroll
            for (unsigned j = 0; j < MHC_MAX_NC; j++)
                if (j < nc) s = __fadd_rn(s, __fmul_rn(m[nc + j * nc + k], xv[j]));
            ot[(unsigned long long)k * d + i] = __fadd_rn(__fmul_rn(m[k], fi), s);
        }
    }
}
