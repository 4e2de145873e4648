#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_fp16.h>

// One 16x8x16 bf16 tile: cp.async (both .cg and .ca) into shared, ldmatrix.x4 / .x2, mma.sync.
extern "C" __global__ void mma_bf16(const __nv_bfloat16* A, const __nv_bfloat16* Bt, float* D) {
    __shared__ __align__(128) __nv_bfloat16 sa[16 * 16];
    __shared__ __align__(128) __nv_bfloat16 sb[8 * 16];
    int l = threadIdx.x;
    unsigned sa_addr = (unsigned)__cvta_generic_to_shared(sa) + l * 16;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa_addr), "l"(A + l * 8));
    if (l < 16) {
        unsigned sb_addr = (unsigned)__cvta_generic_to_shared(sb) + l * 16;
        asm volatile("cp.async.ca.shared.global [%0], [%1], 16;" ::"r"(sb_addr), "l"(Bt + l * 8));
    }
    asm volatile("cp.async.commit_group;");
    asm volatile("cp.async.wait_group 0;");
    __syncthreads();
    unsigned a0, a1, a2, a3, b0, b1;
    int r = (l % 8) + 8 * ((l / 8) % 2), c = 8 * (l / 16);
    unsigned pa = (unsigned)__cvta_generic_to_shared(&sa[r * 16 + c]);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(a0), "=r"(a1), "=r"(a2), "=r"(a3) : "r"(pa));
    unsigned pb = (unsigned)__cvta_generic_to_shared(&sb[(l % 8) * 16 + 8 * ((l / 8) % 2)]);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];" : "=r"(b0), "=r"(b1) : "r"(pb));
    float d0 = 0, d1 = 0, d2 = 0, d3 = 0;
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    int g = l / 4, q = l % 4;
    D[g * 8 + 2 * q] = d0;
    D[g * 8 + 2 * q + 1] = d1;
    D[(g + 8) * 8 + 2 * q] = d2;
    D[(g + 8) * 8 + 2 * q + 1] = d3;
}

// cp.async destinations keep their old bytes until the wait; src-size 0..16 zero-fills.
extern "C" __global__ void cp_async_zfill(const unsigned* src, unsigned* out) {
    __shared__ __align__(16) unsigned s[4 * 32];
    int l = threadIdx.x;
    unsigned dst = (unsigned)__cvta_generic_to_shared(&s[4 * l]);
    int src_size = (l % 5) * 4;  // 0, 4, 8, 12, 16 bytes
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src + 4 * l), "r"(src_size));
    asm volatile("cp.async.commit_group;");
    unsigned before = s[4 * l];
    asm volatile("cp.async.wait_all;");
    out[5 * l] = before;
    for (int k = 0; k < 4; k++) out[5 * l + 1 + k] = s[4 * l + k];
}

// Bit manipulation: prmt (all modes), lop3, shf, bfe, bfi, 64-bit integer arithmetic.
extern "C" __global__ void bit_ops(const unsigned* x, unsigned* out) {
    int t = threadIdx.x;
    unsigned a = x[2 * t], b = x[2 * t + 1];
    unsigned* o = out + 20 * t;
    o[0] = __byte_perm(a, b, b & 0xffff);
    unsigned r;
    asm("prmt.b32.f4e %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(t));
    o[1] = r;
    asm("prmt.b32.b4e %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(t));
    o[2] = r;
    asm("prmt.b32.ecl %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(t));
    o[3] = r;
    asm("prmt.b32.rc16 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(t));
    o[4] = r;
    asm("lop3.b32 %0, %1, %2, %3, 0xE8;" : "=r"(r) : "r"(a), "r"(b), "r"(a ^ b ^ t));
    o[5] = r;
    o[6] = __funnelshift_l(a, b, t);
    o[7] = __funnelshift_rc(a, b, t * 3);
    asm("bfe.u32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(t % 32), "r"(b % 40));
    o[8] = r;
    asm("bfe.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(t % 32), "r"(b % 40));
    o[9] = r;
    asm("bfi.b32 %0, %1, %2, %3, %4;" : "=r"(r) : "r"(a), "r"(b), "r"(t % 32), "r"(t % 13));
    o[10] = r;
    o[11] = __umulhi(a, b);
    o[12] = (unsigned)__mulhi((int)a, (int)b);
    o[13] = __usad(a, b, t);
    unsigned long long A = ((unsigned long long)a << 32) | b, B = ((unsigned long long)b << 17) ^ a;
    unsigned long long q = A / (B | 1), m = A % (B | 1);
    o[14] = (unsigned)q ^ (unsigned)(q >> 32);
    o[15] = (unsigned)m ^ (unsigned)(m >> 32);
    long long sa = (long long)A, sb = -(long long)(B | 1);
    o[16] = (unsigned)(sa / sb) ^ (unsigned)((sa % sb) >> 7);
    o[17] = (unsigned)__umul64hi(A, B) + __clzll(A) + __popcll(B);
    o[18] = (int)a / ((int)b | 1) + (int)a % ((int)b | 1);
    o[19] = (unsigned)((A >> (t % 64)) + ((long long)A >> (t % 64)) + (A << (t % 64)));
}

// FP8 conversions: f32 -> e4m3x2 / e5m2x2 (satfinite) and back through f16x2.
extern "C" __global__ void fp8_cvt(const float* x, unsigned* out) {
    int t = threadIdx.x;
    float2 v = make_float2(x[2 * t], x[2 * t + 1]);
    __nv_fp8x2_storage_t e4 = __nv_cvt_float2_to_fp8x2(v, __NV_SATFINITE, __NV_E4M3);
    __nv_fp8x2_storage_t e5 = __nv_cvt_float2_to_fp8x2(v, __NV_SATFINITE, __NV_E5M2);
    __half2_raw h4 = __nv_cvt_fp8x2_to_halfraw2(e4, __NV_E4M3);
    __half2_raw h5 = __nv_cvt_fp8x2_to_halfraw2(e5, __NV_E5M2);
    out[4 * t] = e4;
    out[4 * t + 1] = e5;
    out[4 * t + 2] = h4.x | ((unsigned)h4.y << 16);
    out[4 * t + 3] = h5.x | ((unsigned)h5.y << 16);
}
