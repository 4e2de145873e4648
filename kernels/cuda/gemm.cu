// gemm.cu — linear layers `y = x · Wᵀ` with the checkpoint's weight formats (family "gemm").
//
// Mirrors `dsv4_reference::linear::Linear::{forward, forward_rows}` and the expert FFN of
// `dsv4_reference::ops::moe::expert_ffn`. Simple CUDA-core version (no wgmma/TMA yet).
//
// Weights, row-major [N, K] in their stored precision (expert e of a grouped weight starts
// e * w_es bytes into `w` and e * s_es bytes into its scales):
//   f32   : float  [N, K]
//   bf16  : u16    [N, K]
//   fp8   : e4m3   [N, K], e8m0 scales [ceil(N/128), ceil(K/128)]   (one per 128x128 block)
//   fp4   : e2m1   [N, K/2] (low nibble = even k), e8m0 scales [N, K/32]   (requires K % 32 == 0)
// Activations: f32 row-major. Activation quantisation (ActQuant::On for fp8/fp4 weights) is a
// separate launch of quant.cu's `quant_fp8_qdq` (block 128) into a scratch copy of x, whose values
// q·s_x are then multiplied here by the dequantised weights w·s_w — the same f32 products as the
// reference (every scale is a power of two, so q·s_x·w·s_w is exact in both), summed in another
// order.
//
// Row indirection (the grouped expert GEMMs; the plain linear passes perm = experts = NULL,
// x_div = 1): GEMM row r stands for pair p = perm ? perm[r] : r; it reads x row p / x_div, uses
// expert experts ? experts[p] : 0 and writes output row p. Rows sharing an expert in the same
// 4-row chunk (perm sorted by expert) load each weight value once.
//
// Kernels:
//   gemm_{f32,bf16,fp8,fp4}(x, w, ws, y, rows, K, n0, n1, perm, experts, x_div, w_es, s_es)
//       y[p, n - n0] = Σ_k x[p/x_div, k] · W_e[n, k] for n in [n0, n1) (`forward_rows`); y is
//       [*, n1 - n0].
//   gemm_swiglu_{f32,bf16,fp8,fp4}(x, w1, s1, w3, s3, h, rows, K, N, perm, experts, x_div, w_es,
//                                  s_es, route_w, limit, use_limit)
//       g = x·W1ᵀ, u = x·W3ᵀ (both [*, N]); with use_limit g = min(g, limit), u = clamp(u, ±limit);
//       h[p, n] = g / (1 + exp(-g)) * u * (route_w ? route_w[p] : 1).
// Launch: block 128 threads = 4 warps, one warp per output column n and chunk of 4 rows;
// grid = (ceil((n1 - n0) / 4), ceil(rows / 4)). Lane l owns k = 128·j + 4l .. +3 (coalesced
// 16-byte f32 / 8-byte bf16 / 4-byte fp8 / 2-byte fp4 loads when K % 4 == 0, scalar loads
// otherwise), per-lane f32 FMA accumulation, then a butterfly sum across the warp.
//
// Tolerance vs the reference: products identical, f32 sums in a different order (per-lane
// strided partials + a tree instead of per-128-block sequential sums) and FMA: |err| ≲ a few
// 1e-7 · Σ_k |x_k·w_k|, tested at 1e-5 of the row's magnitude. SwiGLU: exp is computed in f64
// and rounded once, i.e. the correctly rounded f32 exp the reference's libm expf returns in
// practice; the division and products are the reference's f32 operations in its order.
#include <stdint.h>

enum WKind { W_F32 = 0, W_BF16 = 1, W_FP8 = 2, W_FP4 = 3 };

// ---- weight format decoding (bit math; reference/src/formats.rs) --------------------------------

__device__ __forceinline__ float bf16_to_f32(uint32_t h) { return __uint_as_float((h & 0xffffu) << 16); }

// e4m3: bias 7, no infinities, 0x7f/0xff NaN; subnormals m·2^-9.
__device__ __forceinline__ float e4m3_to_f32(uint32_t b) {
    const uint32_t em = b & 0x7fu, sign = (b & 0x80u) << 24;
    const uint32_t e = em >> 3, m = em & 7u;
    float mag = e == 0 ? (float)m * 0x1p-9f : __uint_as_float(((e + 120u) << 23) | (m << 20));
    if (em == 0x7fu) mag = __uint_as_float(0x7fc00000u);
    return __uint_as_float(__float_as_uint(mag) | sign);
}

// e8m0: 2^(b-127) (b = 0 is the subnormal 2^-127), 0xff NaN.
__device__ __forceinline__ float e8m0_to_f32(uint32_t b) {
    b &= 0xffu;
    if (b == 0xffu) return __uint_as_float(0x7fc00000u);
    return b == 0 ? __uint_as_float(0x00400000u) : __uint_as_float(b << 23);
}

// e2m1 nibble: codes 0..7 = {0, .5, 1, 1.5, 2, 3, 4, 6}, bit 3 the sign.
__device__ __forceinline__ float e2m1_to_f32(uint32_t c) {
    const uint32_t e = (c >> 1) & 3u, m = c & 1u;
    const float mag = e == 0 ? 0.5f * (float)m : __uint_as_float(((e + 126u) << 23) | (m << 22));
    return __uint_as_float(__float_as_uint(mag) | ((c & 8u) << 28));
}

// ---- loads -------------------------------------------------------------------------------------

// x[k .. k+4) of one row (zero past K). vec: K % 4 == 0, so the 4 values are all in or all out.
__device__ __forceinline__ void load_x4(const float* __restrict__ xr, uint32_t K, uint32_t k, bool vec, float v[4]) {
    if (vec) {
        if (k < K) {
            const float4 t = __ldg(reinterpret_cast<const float4*>(xr + k));
            v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
        } else {
            v[0] = v[1] = v[2] = v[3] = 0.0f;
        }
    } else {
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = k + i < K ? __ldg(xr + k + i) : 0.0f;
    }
}

// The dequantised weights W[n, k .. k+4) (zero past K) of the matrix at `w` / scales `ws`.
template <int KIND>
__device__ __forceinline__ void load_w4(const uint8_t* __restrict__ w, const uint8_t* __restrict__ ws, uint32_t K, uint32_t n,
                                        uint32_t k, bool vec, float v[4]) {
    const uint64_t off = (uint64_t)n * K + k;
    if (KIND == W_F32) {
        const float* p = reinterpret_cast<const float*>(w) + off;
        if (vec) {
            if (k < K) {
                const float4 t = __ldg(reinterpret_cast<const float4*>(p));
                v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
            } else {
                v[0] = v[1] = v[2] = v[3] = 0.0f;
            }
        } else {
#pragma unroll
            for (int i = 0; i < 4; i++) v[i] = k + i < K ? __ldg(p + i) : 0.0f;
        }
    } else if (KIND == W_BF16) {
        const uint16_t* p = reinterpret_cast<const uint16_t*>(w) + off;
        if (vec) {
            if (k < K) {
                const uint2 t = __ldg(reinterpret_cast<const uint2*>(p));
                v[0] = bf16_to_f32(t.x), v[1] = bf16_to_f32(t.x >> 16), v[2] = bf16_to_f32(t.y), v[3] = bf16_to_f32(t.y >> 16);
            } else {
                v[0] = v[1] = v[2] = v[3] = 0.0f;
            }
        } else {
#pragma unroll
            for (int i = 0; i < 4; i++) v[i] = k + i < K ? bf16_to_f32(__ldg(p + i)) : 0.0f;
        }
    } else if (KIND == W_FP8) {
        if (k >= K) {
            v[0] = v[1] = v[2] = v[3] = 0.0f;
            return;
        }
        const uint32_t kb = (K + 127) / 128;
        const float s = e8m0_to_f32(__ldg(ws + (uint64_t)(n / 128) * kb + k / 128));
        const uint8_t* p = w + off;
        if (vec) {
            const uint32_t t = __ldg(reinterpret_cast<const uint32_t*>(p));
#pragma unroll
            for (int i = 0; i < 4; i++) v[i] = e4m3_to_f32(t >> (8 * i)) * s;
        } else {
#pragma unroll
            for (int i = 0; i < 4; i++) v[i] = k + i < K ? e4m3_to_f32(__ldg(p + i)) * s : 0.0f;
        }
    } else {  // W_FP4: K % 32 == 0, so vec holds and a lane's 4 values share one scale
        if (k >= K) {
            v[0] = v[1] = v[2] = v[3] = 0.0f;
            return;
        }
        const float s = e8m0_to_f32(__ldg(ws + (uint64_t)n * (K / 32) + k / 32));
        const uint32_t t = __ldg(reinterpret_cast<const uint16_t*>(w + off / 2));
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = e2m1_to_f32(t >> (4 * i)) * s;
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// The f32 exp the reference gets from libm (correctly rounded in practice): f64 exp, rounded once.
__device__ __forceinline__ float exp_f32(float x) { return (float)exp((double)x); }

// ---- the kernel body ---------------------------------------------------------------------------

constexpr int MR = 4;  // rows per warp

template <int KIND, bool SWIGLU>
__device__ __forceinline__ void gemm_body(const float* __restrict__ x, const uint8_t* __restrict__ w1, const uint8_t* __restrict__ s1,
                                          const uint8_t* __restrict__ w3, const uint8_t* __restrict__ s3, float* __restrict__ y,
                                          uint32_t rows, uint32_t K, uint32_t n0, uint32_t n1, const int* __restrict__ perm,
                                          const int* __restrict__ experts, uint32_t x_div, uint64_t w_es, uint64_t s_es,
                                          const float* __restrict__ route_w, float limit, uint32_t use_limit) {
    const uint32_t lane = threadIdx.x & 31;
    const uint32_t n = n0 + blockIdx.x * 4 + (threadIdx.x >> 5);
    if (n >= n1) return;
    const uint32_t r0 = blockIdx.y * MR;
    if (r0 >= rows) return;
    const uint32_t nr = min((uint32_t)MR, rows - r0);

    uint32_t prow[MR];
    const float* xrow[MR];
    int ex[MR];
#pragma unroll
    for (int i = 0; i < MR; i++) {
        const uint32_t p = i < nr ? (perm ? (uint32_t)__ldg(perm + r0 + i) : r0 + i) : 0;
        prow[i] = p;
        xrow[i] = x + (uint64_t)(p / x_div) * K;
        ex[i] = i < nr && experts ? __ldg(experts + p) : 0;
    }

    float acc[MR], acc3[MR];
#pragma unroll
    for (int i = 0; i < MR; i++) acc[i] = acc3[i] = 0.0f;
    const bool vec = (K & 3u) == 0;

    for (uint32_t kb = 0; kb < K; kb += 128) {
        const uint32_t k = kb + 4 * lane;
        int cur = -1;
        float wa[4], wb[4];
#pragma unroll
        for (int i = 0; i < MR; i++) {
            if (i < nr) {
                if (ex[i] != cur) {  // warp-uniform
                    cur = ex[i];
                    load_w4<KIND>(w1 + (uint64_t)cur * w_es, s1 + (uint64_t)cur * s_es, K, n, k, vec, wa);
                    if (SWIGLU) load_w4<KIND>(w3 + (uint64_t)cur * w_es, s3 + (uint64_t)cur * s_es, K, n, k, vec, wb);
                }
                float xv[4];
                load_x4(xrow[i], K, k, vec, xv);
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    acc[i] = fmaf(xv[j], wa[j], acc[i]);
                    if (SWIGLU) acc3[i] = fmaf(xv[j], wb[j], acc3[i]);
                }
            }
        }
    }

    const uint32_t ny = n1 - n0;
#pragma unroll
    for (int i = 0; i < MR; i++) {
        if (i < nr) {
            const float g = warp_sum(acc[i]);
            if (SWIGLU) {
                const float u = warp_sum(acc3[i]);
                if (lane == 0) {
                    float gg = g, uu = u;
                    if (use_limit) {
                        gg = fminf(gg, limit);
                        uu = fminf(fmaxf(uu, -limit), limit);
                    }
                    const float rw = route_w ? __ldg(route_w + prow[i]) : 1.0f;
                    y[(uint64_t)prow[i] * ny + (n - n0)] = gg / (1.0f + exp_f32(-gg)) * uu * rw;
                }
            } else if (lane == 0) {
                y[(uint64_t)prow[i] * ny + (n - n0)] = g;
            }
        }
    }
}

#define GEMM_PLAIN(NAME, KIND)                                                                                                   \
    extern "C" __global__ void __launch_bounds__(128)                                                                            \
        NAME(const float* __restrict__ x, const uint8_t* __restrict__ w, const uint8_t* __restrict__ ws, float* __restrict__ y, \
             uint32_t rows, uint32_t K, uint32_t n0, uint32_t n1, const int* __restrict__ perm, const int* __restrict__ experts,  \
             uint32_t x_div, uint64_t w_es, uint64_t s_es) {                                                                     \
        gemm_body<KIND, false>(x, w, ws, w, ws, y, rows, K, n0, n1, perm, experts, x_div, w_es, s_es, nullptr, 0.0f, 0);         \
    }

#define GEMM_SWIGLU(NAME, KIND)                                                                                                 \
    extern "C" __global__ void __launch_bounds__(128)                                                                           \
        NAME(const float* __restrict__ x, const uint8_t* __restrict__ w1, const uint8_t* __restrict__ s1,                      \
             const uint8_t* __restrict__ w3, const uint8_t* __restrict__ s3, float* __restrict__ h, uint32_t rows, uint32_t K,  \
             uint32_t N, const int* __restrict__ perm, const int* __restrict__ experts, uint32_t x_div, uint64_t w_es,          \
             uint64_t s_es, const float* __restrict__ route_w, float limit, uint32_t use_limit) {                               \
        gemm_body<KIND, true>(x, w1, s1, w3, s3, h, rows, K, 0, N, perm, experts, x_div, w_es, s_es, route_w, limit, use_limit); \
    }

GEMM_PLAIN(gemm_f32, W_F32)
GEMM_PLAIN(gemm_bf16, W_BF16)
GEMM_PLAIN(gemm_fp8, W_FP8)
GEMM_PLAIN(gemm_fp4, W_FP4)
GEMM_SWIGLU(gemm_swiglu_f32, W_F32)
GEMM_SWIGLU(gemm_swiglu_bf16, W_BF16)
GEMM_SWIGLU(gemm_swiglu_fp8, W_FP8)
GEMM_SWIGLU(gemm_swiglu_fp4, W_FP4)
