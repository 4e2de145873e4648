// moe.cu — mixture-of-experts bookkeeping (family "moe"): routing, grouping pairs by expert, and
// the final combine. The expert matmuls themselves are gemm.cu's grouped kernels
// (`gemm_swiglu_*` for w1/w3 + SwiGLU, `gemm_*` for w2), the act quant quant.cu's.
//
// Mirrors `dsv4_reference::model::Model::{moe_route, moe_experts}` and
// `dsv4_reference::ops::moe::{gate_scores, route, topk_indices}`. T tokens, E experts, k slots per
// token, a "pair" p = t·k + j is slot j of token t.
//
// moe_route(logits, bias, table, tokens, experts_out, weights_out, T, E, k, route_scale)
//     logits f32 [T, E] (the gate GEMM, f32, no act quant); bias f32 [E] or NULL; table i32
//     [vocab, k] (hash routing, tid2eid) or NULL; tokens u32 [T] (read only with a table).
//     score = sqrt(softplus(l)) (torch softplus, threshold 20); experts = table[tokens[t]] or the k
//     largest score + bias, descending, ties to the lower index (Rust total_cmp order via an
//     order-preserving integer key, packed with ~index into a u64 and max-reduced); weights =
//     score[e] / Σ_j score[e_j] · route_scale (f32, sequential sum in slot order, like the
//     reference). Outputs experts i32 [T, k], weights f32 [T, k].
//     Launch: one warp per token, block 128 (4 tokens), grid ceil(T / 4), dynamic shared memory
//     4 · E · 8 bytes (scores and keys per warp).
//     Tolerance: softplus uses f64 exp / log1p rounded once to f32 (= libm's correctly rounded f32
//     results in practice), sqrt is sqrt.rn, the rest is the reference's f32 arithmetic: scores and
//     weights agree to an ulp or two (1e-6 relative), experts are identical unless two biased
//     scores are within that noise of each other at the top-k boundary.
// moe_sort(experts, P, E, perm)
//     perm i32 [P]: the pairs grouped by expert (expert-major; the order inside an expert's group
//     is arbitrary — every pair's result is independent of its position). Counting sort in one
//     CTA of 1024 threads with shared-memory atomics; dynamic shared memory 2 · E · 4 bytes.
//     Requires every expert id in [0, E).
// moe_combine(yp, experts, ys, out, T, k, D)
//     out[t, :] = ((0 + yp[p_1]) + yp[p_2] + ... ) + ys[t] where p_1, p_2, ... are token t's pairs in
//     (expert, slot) order — the reference's accumulation order, so given the same yp and ys the
//     sum is bit-identical. yp f32 [T·k, D] (routed expert outputs, routing weight applied), ys f32
//     [T, D] (shared expert) or NULL. Launch: one CTA of 128 threads per token, grid T.
#include <stdint.h>

// torch softplus(beta 1, threshold 20) = ln_1p(exp(x)) in f32, each libm call rounded once.
__device__ __forceinline__ float softplus_f32(float x) {
    if (x > 20.0f) return x;
    const float e = (float)exp((double)x);
    return (float)log1p((double)e);
}

// Unsigned key with the order of Rust's f32::total_cmp.
__device__ __forceinline__ uint32_t total_key(float f) {
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ unsigned long long warp_max_u64(unsigned long long v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long t = __shfl_xor_sync(0xffffffffu, v, o);
        v = t > v ? t : v;
    }
    return v;
}

extern "C" __global__ void __launch_bounds__(128) moe_route(const float* __restrict__ logits, const float* __restrict__ bias,
                                                            const int* __restrict__ table, const uint32_t* __restrict__ tokens,
                                                            int* __restrict__ experts_out, float* __restrict__ weights_out,
                                                            uint32_t T, uint32_t E, uint32_t k, float route_scale) {
    extern __shared__ uint32_t smem[];
    const uint32_t lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const uint32_t t = blockIdx.x * 4 + wid;
    if (t >= T) return;
    float* sc = reinterpret_cast<float*>(smem) + (size_t)wid * 2 * E;
    uint32_t* key = smem + (size_t)wid * 2 * E + E;
    const float* lt = logits + (uint64_t)t * E;
    for (uint32_t e = lane; e < E; e += 32) {
        const float s = sqrtf(softplus_f32(lt[e]));
        sc[e] = s;
        key[e] = total_key(bias ? s + bias[e] : s);
    }
    __syncwarp();
    int* eo = experts_out + (uint64_t)t * k;
    float* wo = weights_out + (uint64_t)t * k;
    if (table) {
        const int* row = table + (uint64_t)tokens[t] * k;
        for (uint32_t j = lane; j < k; j += 32) eo[j] = row[j];
    } else {
        for (uint32_t j = 0; j < k; j++) {
            unsigned long long best = 0;
            for (uint32_t e = lane; e < E; e += 32) {
                const unsigned long long v = ((unsigned long long)key[e] << 32) | (uint32_t)~e;
                best = v > best ? v : best;
            }
            best = warp_max_u64(best);
            const uint32_t e = ~(uint32_t)best;
            __syncwarp();
            if (lane == 0) {
                eo[j] = (int)e;
                key[e] = 0;  // taken: below every real key (k <= E leaves a real one each round)
            }
            __syncwarp();
        }
    }
    __syncwarp();
    if (lane == 0) {
        float sum = 0.0f;
        for (uint32_t j = 0; j < k; j++) sum += sc[eo[j]];
        for (uint32_t j = 0; j < k; j++) wo[j] = sc[eo[j]] / sum * route_scale;
    }
}

extern "C" __global__ void __launch_bounds__(1024) moe_sort(const int* __restrict__ experts, uint32_t P, uint32_t E, int* __restrict__ perm) {
    extern __shared__ uint32_t smem[];
    uint32_t* cnt = smem;
    uint32_t* off = smem + E;
    for (uint32_t e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = 0;
    __syncthreads();
    for (uint32_t p = threadIdx.x; p < P; p += blockDim.x) atomicAdd(&cnt[experts[p]], 1u);
    __syncthreads();
    if (threadIdx.x == 0) {
        uint32_t s = 0;
        for (uint32_t e = 0; e < E; e++) {
            off[e] = s;
            s += cnt[e];
        }
    }
    __syncthreads();
    for (uint32_t p = threadIdx.x; p < P; p += blockDim.x) perm[atomicAdd(&off[experts[p]], 1u)] = (int)p;
}

extern "C" __global__ void __launch_bounds__(128) moe_combine(const float* __restrict__ yp, const int* __restrict__ experts,
                                                              const float* __restrict__ ys, float* __restrict__ out, uint32_t T,
                                                              uint32_t k, uint32_t D) {
    __shared__ uint32_t order[64];
    const uint32_t t = blockIdx.x;
    if (t >= T) return;
    const int* ex = experts + (uint64_t)t * k;
    if (threadIdx.x == 0) {
        // (expert, slot) order: selection by rank, k is small.
        for (uint32_t j = 0; j < k && j < 64; j++) {
            uint32_t rank = 0;
            for (uint32_t i = 0; i < k; i++) rank += ex[i] < ex[j] || (ex[i] == ex[j] && i < j);
            if (rank < 64) order[rank] = j;
        }
    }
    __syncthreads();
    for (uint32_t c = threadIdx.x; c < D; c += blockDim.x) {
        float acc = 0.0f;
        for (uint32_t r = 0; r < k; r++) acc += yp[((uint64_t)t * k + order[r]) * D + c];
        if (ys) acc += ys[(uint64_t)t * D + c];
        out[(uint64_t)t * D + c] = acc;
    }
}
