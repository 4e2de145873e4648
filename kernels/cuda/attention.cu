// attention.cu — sparse attention with a per-head sink over the window ring, the chunk's KV and
// the selected compressed entries; the window-ring update; a row copy for the growable caches.
//
// Mirrors `dsv4_reference::model::Model::attn_core` minus the inverse RoPE (the rope family
// applies it to the output afterwards), i.e. `ops::attention::sparse_attn` with the index rows
// that `attn_core` builds, read straight from the three buffers (no concatenated copy).
//
// Layouts (all f32, row-major). "Step rows": the activations of one model step hold the rows of
// several sequences' chunks; a chunk is rows row0 .. row0+t_len at positions pos0 .. pos0+t_len.
//   q     [*, H*hd]     step rows (RoPE'd queries)
//   kv    [*, hd]       step rows (this step's window KV: RMSNorm, RoPE, FP8-simulated)
//   ring  [win, hd]     the sequence's window ring: slot = position mod win, holds positions
//                       pos0-win .. pos0-1 (NaN where never written)
//   comp  [cap, hd]     the sequence's compressed entries (row = entry index)
//   sel   [*, width]    step rows, i32 entry indices, -1 = unused slot (sel_mode 2)
//   sink  [H]
//   out   [*, H*hd]     step rows
//
// attn_sparse_sink: for the token at row r = row0+t (position p = pos0+t) and head h, the list
// is the window positions max(0, p-win+1) .. p (position >= pos0: chunk row row0+(pos-pos0);
// else ring slot pos % win), then the compressed entries: sel_mode 0 none, 1 every complete
// entry 0 .. (p+1)/ratio - 1 (ratio-128 layers), 2 the row's sel list in order (-1 skipped).
// s_j = (q_h · k_j) * scale; o = Σ_j e^{s_j - m} k_j / (e^{sink_h - m} + Σ_j e^{s_j - m}).
// One CTA per (token, head); its 4 warps take every 4th list entry (warp w: j = w, w+4, …) and
// keep an online softmax each (lane owns channels lane + 32·i, i < 16, so hd <= 512); warp 0
// starts from the sink logit (m = sink, l = 1, acc = 0), the others empty (m = -inf, l = 0);
// the four partials are merged through shared memory. An empty list gives o = 0.
// Launch: grid (t_len, H), block 128.
//
// attn_ring_update: ring[(pos0+t) % win] = kv[row0+t] for the chunk's last min(t_len, win) rows.
// Launch after attn_sparse_sink of the same chunk (it reads the old ring). grid min(t_len,win),
// block 128.
//
// attn_copy_f32: dst[i] = src[i], i < n (grid-stride; dst/src do not overlap). grid any, block 256.
//
// Tolerance vs the reference: the reference takes the max over all logits first and sums the
// exponentials in list order; the split online softmax rescales as it goes and sums in another
// order, and expf differs from the host's exp by <= 2 ulp, so outputs agree to ~1e-5 relative
// (plus a few 1e-7 absolute).

#define ATTN_SPLIT 4
#define ATTN_MAX_HD 512
#define ATTN_VPL (ATTN_MAX_HD / 32)

__device__ __forceinline__ float attn_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

struct AttnAcc {
    float m, l;
    float acc[ATTN_VPL];
};

// One list entry: the lane's slice of row `k`.
__device__ __forceinline__ void attn_step(AttnAcc& a, const float (&qv)[ATTN_VPL], const float* __restrict__ k, unsigned lane,
                                          unsigned hd, float scale) {
    float v[ATTN_VPL];
    float part = 0.f;
#pragma unroll
    for (int i = 0; i < ATTN_VPL; ++i) {
        unsigned c = lane + 32u * i;
        v[i] = c < hd ? k[c] : 0.f;
        part += qv[i] * v[i];
    }
    float s = attn_warp_sum(part) * scale;
    float mn = fmaxf(a.m, s);
    float corr = expf(a.m - mn);
    float p = expf(s - mn);
    a.l = a.l * corr + p;
#pragma unroll
    for (int i = 0; i < ATTN_VPL; ++i) a.acc[i] = a.acc[i] * corr + p * v[i];
    a.m = mn;
}

extern "C" __global__ void __launch_bounds__(32 * ATTN_SPLIT) attn_sparse_sink(
    const float* __restrict__ q, const float* __restrict__ kv, const float* __restrict__ ring, const float* __restrict__ comp,
    const int* __restrict__ sel, const float* __restrict__ sink, float* __restrict__ out, unsigned row0, unsigned t_len,
    unsigned pos0, unsigned heads, unsigned hd, unsigned win, unsigned sel_mode, unsigned sel_width, unsigned ratio,
    float scale) {
    __shared__ float s_m[ATTN_SPLIT], s_l[ATTN_SPLIT];
    __shared__ float s_acc[ATTN_SPLIT][ATTN_MAX_HD];
    const unsigned t = blockIdx.x;
    const unsigned head = blockIdx.y;
    const unsigned lane = threadIdx.x & 31u;
    const unsigned warp = threadIdx.x >> 5;
    if (t >= t_len || head >= heads) return;  // uniform over the CTA
    const unsigned row = row0 + t;
    const unsigned p = pos0 + t;

    float qv[ATTN_VPL];
    const float* qh = q + ((size_t)row * heads + head) * hd;
#pragma unroll
    for (int i = 0; i < ATTN_VPL; ++i) {
        unsigned c = lane + 32u * i;
        qv[i] = c < hd ? qh[c] : 0.f;
    }
    // Warp 0 carries the sink logit; the others start empty.
    AttnAcc a;
    a.m = warp == 0 ? sink[head] : -INFINITY;
    a.l = warp == 0 ? 1.f : 0.f;
#pragma unroll
    for (int i = 0; i < ATTN_VPL; ++i) a.acc[i] = 0.f;

    // The list: window positions lo .. p, then the compressed entries.
    const unsigned lo = p + 1 > win ? p + 1 - win : 0u;
    const unsigned n_win = p + 1 - lo;
    const unsigned n_comp = sel_mode == 1u ? (p + 1) / ratio : sel_mode == 2u ? sel_width : 0u;
    const int* sr = sel + (size_t)row * sel_width;
    for (unsigned j = warp; j < n_win + n_comp; j += ATTN_SPLIT) {
        const float* k;
        if (j < n_win) {
            const unsigned pos = lo + j;
            k = pos >= pos0 ? kv + (size_t)(row0 + (pos - pos0)) * hd : ring + (size_t)(pos % win) * hd;
        } else if (sel_mode == 2u) {
            const int e = sr[j - n_win];
            if (e < 0) continue;
            k = comp + (size_t)e * hd;
        } else {
            k = comp + (size_t)(j - n_win) * hd;
        }
        attn_step(a, qv, k, lane, hd, scale);
    }

    // Combine the warps' partial softmaxes: o = Σ_w acc_w e^{m_w - M} / Σ_w l_w e^{m_w - M}.
    if (lane == 0) {
        s_m[warp] = a.m;
        s_l[warp] = a.l;
    }
#pragma unroll
    for (int i = 0; i < ATTN_VPL; ++i) {
        unsigned c = lane + 32u * i;
        if (c < hd) s_acc[warp][c] = a.acc[i];
    }
    __syncthreads();
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < ATTN_SPLIT; ++w) mx = fmaxf(mx, s_m[w]);
    float wgt[ATTN_SPLIT];
    float l = 0.f;
#pragma unroll
    for (int w = 0; w < ATTN_SPLIT; ++w) {
        wgt[w] = s_m[w] == -INFINITY ? 0.f : expf(s_m[w] - mx);
        l += s_l[w] * wgt[w];
    }
    const float inv = l > 0.f ? 1.f / l : 0.f;
    float* oh = out + ((size_t)row * heads + head) * hd;
    for (unsigned c = threadIdx.x; c < hd; c += 32 * ATTN_SPLIT) {
        float o = 0.f;
#pragma unroll
        for (int w = 0; w < ATTN_SPLIT; ++w) o += s_acc[w][c] * wgt[w];
        oh[c] = o * inv;
    }
}

extern "C" __global__ void __launch_bounds__(128) attn_ring_update(float* __restrict__ ring, const float* __restrict__ kv,
                                                                   unsigned row0, unsigned t_len, unsigned pos0, unsigned hd,
                                                                   unsigned win) {
    const unsigned n = t_len < win ? t_len : win;
    if (blockIdx.x >= n) return;
    const unsigned t = t_len - n + blockIdx.x;
    const unsigned slot = (pos0 + t) % win;
    const float* src = kv + (size_t)(row0 + t) * hd;
    float* dst = ring + (size_t)slot * hd;
    for (unsigned c = threadIdx.x; c < hd; c += blockDim.x) dst[c] = src[c];
}

extern "C" __global__ void __launch_bounds__(256) attn_copy_f32(float* __restrict__ dst, const float* __restrict__ src,
                                                                unsigned long long n) {
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x)
        dst[i] = src[i];
}
