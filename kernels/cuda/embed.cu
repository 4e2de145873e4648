// embed.cu — token embedding gather (family "embed").
//
// Mirrors Model::embed + Model::forward's stream copy: out[t, j*d + i] = E[tokens[t], i] for
// every stream j < nc, with E the embedding `Linear` [vocab, d] read through `Linear::row`
// (BF16 widened to f32 exactly; F32 copied). nc = 1 gives plain [T, d] rows (the MTP input).
// Kernels `embed_gather_bf16(w u16 [vocab, d], tokens u32 [T], out f32 [T, nc*d], T, d, nc, vocab)`
//          `embed_gather_f32 (w f32 [vocab, d], ...same)`
//   A token id >= vocab writes NaN rows (the host validates ids; a bad one is then visible).
// Launch: 1-D, one thread per (t, i): grid = ceil(T*d / block), any block (wrapper: 256).
// Tolerance: exact (a copy / an exact bf16 -> f32 widening).

extern "C" __global__ void __launch_bounds__(1024) embed_gather_bf16(const unsigned short* __restrict__ w, const unsigned* __restrict__ tokens,
                                                                      float* __restrict__ out, unsigned T, unsigned d, unsigned nc,
                                                                      unsigned vocab) {
    const unsigned long long gid = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (gid >= (unsigned long long)T * d) return;
    const unsigned t = (unsigned)(gid / d);
    const unsigned i = (unsigned)(gid - (unsigned long long)t * d);
    const unsigned tok = tokens[t];
    const float v = tok < vocab ? __uint_as_float((unsigned)w[(unsigned long long)tok * d + i] << 16) : __uint_as_float(0x7fffffffu);
    float* o = out + (unsigned long long)t * nc * d + i;
    for (unsigned j = 0; j < nc; j++) o[(unsigned long long)j * d] = v;
}

extern "C" __global__ void __launch_bounds__(1024) embed_gather_f32(const float* __restrict__ w, const unsigned* __restrict__ tokens,
                                                                     float* __restrict__ out, unsigned T, unsigned d, unsigned nc,
                                                                     unsigned vocab) {
    const unsigned long long gid = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (gid >= (unsigned long long)T * d) return;
    const unsigned t = (unsigned)(gid / d);
    const unsigned i = (unsigned)(gid - (unsigned long long)t * d);
    const unsigned tok = tokens[t];
    const float v = tok < vocab ? w[(unsigned long long)tok * d + i] : __uint_as_float(0x7fffffffu);
    float* o = out + (unsigned long long)t * nc * d + i;
    for (unsigned j = 0; j < nc; j++) o[(unsigned long long)j * d] = v;
}
