// rope.cu — rotary position embedding on the last rd dims of each head (family "rope").
//
// Mirrors dsv4_reference::ops::rope::Rope::apply (plain and YaRN: the per-pair frequencies
// `Rope::freqs` are computed on the host by the reference and uploaded as they are, f32 [rd/2]):
//   a_i       = f32(pos) * f_i                       (rounded to f32, as the reference)
//   (c_i,s_i) = (f32(cos(f64 a_i)), f32(sin(f64 a_i)))   (s_i negated for the inverse rotation)
//   x'[2i]    = x[2i]*c - x[2i+1]*s ;  x'[2i+1] = x[2i]*s + x[2i+1]*c   (on the head's tail
//                                                                       [hd-rd, hd), no FMA)
// Kernel `rope_apply(x, rows, heads, hd, half, stride, freqs, pos, pos0, inverse)`:
//   x: f32, row r at x + r*stride, head h at + h*hd (heads*hd <= stride), updated in place.
//   half = rd/2 pairs per head; freqs: f32 [half].
//   pos: u32 [rows] (each row's position; rows of several sequences may mix) or null, in which
//   case row r is at position pos0 + r. inverse != 0 rotates by -angle (attention output).
// Launch: 1-D, one thread per (row, head, pair): grid = ceil(rows*heads*half / block), any block
//   (the wrapper uses 128). Needs rows*heads*half < 2^32.
// cos/sin: our own f64 routine (no CUDA libm: its sin/cos have a Payne–Hanek slow path that
//   uses local memory). Cody–Waite reduction by pi/2 with a 4-part constant (exact first step;
//   angles are f32 values below 2^24·f, i.e. |a| < 2^24 rad) and fdlibm's minimax kernels on
//   [-pi/4, pi/4]: error below ~2 f64 ulps, so after rounding to f32 the values equal the
//   reference's (`f64::cos/sin as f32`) except when the f64 value lies within ~2^-52 relative of
//   an f32 rounding boundary (probability ~2^-28 per value). The rotation is then bit-exact.
//   Tolerance in the tests: 1e-6 relative to the row's pair magnitude (expected: 0 differences).
//
// Kernel `rope_norm_apply(x, w, rows, heads, hd, half, stride, eps, freqs, pos, pos0, inverse)`:
//   the RMSNorm of each head (width hd; weighted by w [hd] when w != null, else unweighted,
//   exactly norm.cu's `norm_rms` with its block size and reduction) followed by the rotation
//   above, in place: the per-head q path of attn_queries (unweighted) or the kv path of
//   attn_window_kv / compressed entries (heads = 1, weighted by kv_norm).
//   Launch: grid = rows*heads (one CTA per head), block = min(256, hd rounded up to 32).
//   Bit-identical to norm_rms followed by rope_apply.

__device__ __forceinline__ void rope_sincos(float angle, float* s_out, float* c_out) {
    const double x = (double)angle;
    const double n = rint(x * 6.36619772367581382433e-01);  // 2/pi
    // fdlibm's pi/2 split: 33 + 33 + 33 + 53 bits. n*P1 is exact for |n| < 2^20 and x - n*P1 is
    // exact; larger angles (|a| >= ~1.6e6 rad) lose about log2(n)-20 bits of r in the last steps,
    // still far below f32 resolution.
    double r = fma(-n, 1.57079632673412561417e+00, x);
    r = fma(-n, 6.07710050630396597660e-11, r);
    r = fma(-n, 2.02226624871116645580e-21, r);
    r = fma(-n, 8.47842766036889956997e-32, r);
    const double z = r * r;
    // sin(r), fdlibm __kernel_sin
    const double sp = 8.33333333332248946124e-03 +
                      z * (-1.98412698298579493134e-04 + z * (2.75573137070700676789e-06 +
                                                               z * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10)));
    const double sr = r + (z * r) * (-1.66666666666666324348e-01 + z * sp);
    // cos(r), fdlibm __kernel_cos polynomial: 1 - (z/2 - z*C(z))
    const double cp =
        z * (4.16666666666666019037e-02 +
             z * (-1.38888888888741095749e-03 +
                  z * (2.48015872894767294178e-05 +
                       z * (-2.75573143513906633035e-07 + z * (2.08757232129817482790e-09 + z * -1.13596475577881948265e-11)))));
    const double cr = 1.0 - (0.5 * z - z * cp);
    const int q = (int)(long long)n & 3;
    double s, c;
    if (q == 0) {
        s = sr; c = cr;
    } else if (q == 1) {
        s = cr; c = -sr;
    } else if (q == 2) {
        s = -sr; c = -cr;
    } else {
        s = -cr; c = sr;
    }
    *s_out = (float)s;
    *c_out = (float)c;
}

extern "C" __global__ void __launch_bounds__(1024) rope_apply(float* x, unsigned rows, unsigned heads, unsigned hd, unsigned half,
                                                               unsigned stride, const float* __restrict__ freqs,
                                                               const unsigned* __restrict__ pos, unsigned pos0, int inverse) {
    const unsigned gid = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned per_row = heads * half;
    if (gid >= rows * per_row) return;
    const unsigned row = gid / per_row;
    const unsigned rem = gid - row * per_row;
    const unsigned h = rem / half;
    const unsigned i = rem - h * half;
    const unsigned p = pos != nullptr ? pos[row] : pos0 + row;
    const float angle = __fmul_rn(__uint2float_rn(p), freqs[i]);
    float s, c;
    rope_sincos(angle, &s, &c);
    if (inverse) s = -s;
    float* t = x + (unsigned long long)row * stride + (unsigned long long)h * hd + (hd - 2 * half) + 2 * i;
    const float a = t[0], b = t[1];
    t[0] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    t[1] = __fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c));
}

__device__ __forceinline__ float rope_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the CTA (same tree as norm.cu), returned to every thread. `sh` holds 33 floats.
__device__ __forceinline__ float rope_block_sum(float v, float* sh) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned nwarps = blockDim.x >> 5;
    v = rope_warp_sum(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float t = lane < nwarps ? sh[lane] : 0.0f;
        t = rope_warp_sum(t);
        if (lane == 0) sh[32] = t;
    }
    __syncthreads();
    const float r = sh[32];
    __syncthreads();
    return r;
}

extern "C" __global__ void __launch_bounds__(1024) rope_norm_apply(float* x, const float* __restrict__ w, unsigned rows, unsigned heads,
                                                                    unsigned hd, unsigned half, unsigned stride, float eps,
                                                                    const float* __restrict__ freqs, const unsigned* __restrict__ pos,
                                                                    unsigned pos0, int inverse) {
    __shared__ float sh[33];
    const unsigned row = blockIdx.x / heads;
    const unsigned h = blockIdx.x - row * heads;
    if (row >= rows) return;
    float* xh = x + (unsigned long long)row * stride + (unsigned long long)h * hd;
    float ss = 0.0f;
    for (unsigned i = threadIdx.x; i < hd; i += blockDim.x) {
        const float v = xh[i];
        ss = __fadd_rn(ss, __fmul_rn(v, v));
    }
    ss = rope_block_sum(ss, sh);
    const float ms = __fdiv_rn(ss, (float)hd);
    const float r = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(ms, eps)));
    const unsigned nope = hd - 2 * half;
    // The non-RoPE dims: normalise.
    for (unsigned i = threadIdx.x; i < nope; i += blockDim.x) {
        const float y = __fmul_rn(xh[i], r);
        xh[i] = w != nullptr ? __fmul_rn(w[i], y) : y;
    }
    // The RoPE pairs: normalise both values, then rotate.
    const unsigned p = pos != nullptr ? pos[row] : pos0 + row;
    const float pf = __uint2float_rn(p);
    for (unsigned i = threadIdx.x; i < half; i += blockDim.x) {
        const unsigned c = nope + 2 * i;
        float a = __fmul_rn(xh[c], r), b = __fmul_rn(xh[c + 1], r);
        if (w != nullptr) {
            a = __fmul_rn(w[c], a);
            b = __fmul_rn(w[c + 1], b);
        }
        float s, co;
        rope_sincos(__fmul_rn(pf, freqs[i]), &s, &co);
        if (inverse) s = -s;
        xh[c] = __fsub_rn(__fmul_rn(a, co), __fmul_rn(b, s));
        xh[c + 1] = __fadd_rn(__fmul_rn(a, s), __fmul_rn(b, co));
    }
}
