// quant.cu — activation-quantisation simulation (family "quant").
//
// Mirrors `dsv4_reference::quant` (spec: shared/spec/model.md, "Activation quantisation"):
//   FP8: per contiguous block of `block` values, amax = max(|x|, 1e-4),
//        s = ceil_pow2(amax * f32(1/448)), q = e4m3_rne(clamp(x/s, ±448)).
//   FP4: amax = max(|x|, 6·2^-126), s = ceil_pow2(amax * f32(1/6)),
//        x := e2m1_rne(clamp(x/s, ±6)) * s (ties to the even code).
// Every step is an exactly specified f32 operation (division by a power of two, a max, one
// multiply by a constant, round-to-nearest-even onto a fixed grid), so the results are
// **bit-identical** to the reference (tolerance 0, signs of zeros included).
//
// Kernels (all activations f32 row-major; one warp per quantisation block, 4 warps per CTA,
// launch: grid = ceil(n_blocks / 4), block = 128, no shared memory):
//   quant_fp8_qdq(x, y, rows, width, n_first, block)
//       for each row r < rows and each block of the first n_first columns of that row (a short
//       last block allowed): y[r, c] = q * s for c < n_first. Columns >= n_first are not touched.
//       y == x (allowed: no __restrict__) is the in-place form (KV non-RoPE dims: block 64); with n_first == width and
//       block 128 it is the input of a quantised Linear (`Linear::forward`, ActQuant::On).
//       n_blocks = rows * ceil(n_first / block).
//   quant_fp8_codes(x, q, s, rows, cols, block)
//       `act_quant_fp8`: e4m3 codes q (u8 [rows, cols]) and scales s (f32 [rows, ceil(cols/block)]).
//       n_blocks = rows * ceil(cols / block).
//   quant_fp4_qdq(x, len, block)
//       `act_quant_fp4_inplace` on the contiguous x[0..len) in blocks of `block` (short last block
//       allowed). n_blocks = ceil(len / block).
#include <stdint.h>

// ---- exact format math (bit-level, mirrors reference/src/formats.rs) --------------------------

// 2^p as an f32 for any integer p (subnormal below -126, +inf above 127), like Rust's powi(2, p).
__device__ __forceinline__ float pow2i(int p) {
    if (p > 127) return __int_as_float(0x7f800000);
    if (p >= -126) return __int_as_float((p + 127) << 23);
    if (p >= -149) return __int_as_float(1 << (p + 149));
    return 0.0f;
}

// ceil_pow2(v) = 2^(E + (M != 0)) from the f32 bits of v (the spec's ue8m0 rounding).
__device__ __forceinline__ float ceil_pow2(float v) {
    const uint32_t b = __float_as_uint(v);
    const int e = (int)((b >> 23) & 0xff) - 127;
    return pow2i(e + ((b & 0x7fffff) != 0));
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// FP8 block scale: ceil_pow2(max(amax, 1e-4) * f32(1/448)); amax already includes the 1e-4 floor.
__device__ __forceinline__ float fp8_scale(float amax) { return ceil_pow2(amax * (1.0f / 448.0f)); }

// e4m3 round-to-nearest-even of v / s (clamped to ±448). Every e4m3 value is k·2^(e-3) with
// e = max(exponent, -6); k = rint(|v| · 2^(3-e)) is exact scaling plus one RNE rounding.
// Returns the magnitude k·2^(e-3) and the code's low 7 bits (8e + 48 + k, which also covers the
// subnormals e = -6, k < 8, and the carry k = 16 into the next binade).
__device__ __forceinline__ float e4m3_round_mag(float a, uint32_t* code7) {
    const int e = a < 0x1p-6f ? -6 : (int)((__float_as_uint(a) >> 23) & 0xff) - 127;
    const float k = rintf(a * pow2i(3 - e));
    *code7 = (uint32_t)(8 * e + 48 + (int)k);
    return k * pow2i(e - 3);
}

__device__ __forceinline__ float fp8_qdq(float x, float s) {
    const float v = fminf(fmaxf(x / s, -448.0f), 448.0f);
    uint32_t code;
    const float m = e4m3_round_mag(fabsf(v), &code);
    return copysignf(m, v) * s;
}

__device__ __forceinline__ uint32_t fp8_code(float x, float s) {
    const float v = fminf(fmaxf(x / s, -448.0f), 448.0f);
    uint32_t code;
    e4m3_round_mag(fabsf(v), &code);
    return code | (signbit(v) ? 0x80u : 0u);
}

// e2m1 round-to-nearest, ties to the even code, of |v| <= 6: the code is the number of decision
// thresholds passed (a tie at 0.25, 1.25, 2.5, 5 stays at the even code below, at 0.75, 1.75, 3.5
// goes up to the even code above).
__device__ __forceinline__ float e2m1_round_mag(float a) {
    const int code = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f);
    const int e = code >> 1, m = code & 1;
    return e == 0 ? 0.5f * (float)m : __int_as_float(((e + 126) << 23) | (m << 22));
}

__device__ __forceinline__ float fp4_qdq(float x, float s) {
    const float v = fminf(fmaxf(x / s, -6.0f), 6.0f);
    return copysignf(e2m1_round_mag(fabsf(v)), v) * s;
}

// One warp handles quantisation block `gb` of the FP8 layout described above.
// Lanes stride over the block (coalesced), amax by butterfly max (exact, order-free).
extern "C" __global__ void __launch_bounds__(128) quant_fp8_qdq(const float* x, float* y, uint32_t rows, uint32_t width,
                                                                uint32_t n_first, uint32_t block) {
    const uint32_t lane = threadIdx.x & 31;
    const uint32_t nb = (n_first + block - 1) / block;
    const uint64_t gb = (uint64_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    if (gb >= (uint64_t)rows * nb) return;
    const uint64_t r = gb / nb;
    const uint32_t c0 = (uint32_t)(gb % nb) * block;
    const uint32_t c1 = min(c0 + block, n_first);
    const float* xr = x + r * width;
    float amax = 1e-4f;
    for (uint32_t c = c0 + lane; c < c1; c += 32) amax = fmaxf(amax, fabsf(xr[c]));
    amax = warp_max(amax);
    const float s = fp8_scale(amax);
    float* yr = y + r * width;
    for (uint32_t c = c0 + lane; c < c1; c += 32) yr[c] = fp8_qdq(xr[c], s);
}

extern "C" __global__ void __launch_bounds__(128) quant_fp8_codes(const float* __restrict__ x, uint8_t* __restrict__ q,
                                                                  float* __restrict__ sc, uint32_t rows, uint32_t cols, uint32_t block) {
    const uint32_t lane = threadIdx.x & 31;
    const uint32_t nb = (cols + block - 1) / block;
    const uint64_t gb = (uint64_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    if (gb >= (uint64_t)rows * nb) return;
    const uint64_t r = gb / nb;
    const uint32_t c0 = (uint32_t)(gb % nb) * block;
    const uint32_t c1 = min(c0 + block, cols);
    const float* xr = x + r * cols;
    float amax = 1e-4f;
    for (uint32_t c = c0 + lane; c < c1; c += 32) amax = fmaxf(amax, fabsf(xr[c]));
    amax = warp_max(amax);
    const float s = fp8_scale(amax);
    for (uint32_t c = c0 + lane; c < c1; c += 32) q[r * cols + c] = (uint8_t)fp8_code(xr[c], s);
    if (lane == 0) sc[gb] = s;
}

extern "C" __global__ void __launch_bounds__(128) quant_fp4_qdq(float* x, uint64_t len, uint32_t block) {
    const uint32_t lane = threadIdx.x & 31;
    const uint64_t gb = (uint64_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    const uint64_t c0 = gb * block;
    if (c0 >= len) return;
    const uint64_t c1 = min(c0 + block, len);
    float amax = 6.0f * 0x1p-126f;
    for (uint64_t c = c0 + lane; c < c1; c += 32) amax = fmaxf(amax, fabsf(x[c]));
    amax = warp_max(amax);
    const float s = ceil_pow2(amax * (1.0f / 6.0f));
    for (uint64_t c = c0 + lane; c < c1; c += 32) x[c] = fp4_qdq(x[c], s);
}
