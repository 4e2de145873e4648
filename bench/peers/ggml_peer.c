// ggml peer: y[b, out] = x[b, inp] . W[out, inp]^T with ggml_mul_mat on the CPU backend, weights
// in a ggml type (mxfp4, q4_0, q8_0, f16, bf16), optionally in the CPU_REPACK buffer type (what
// llama.cpp uses by default on x86: the weights are repacked into an interleaved in-RAM copy).
// Activations are F32; ggml quantises them to the weight type's vec_dot type (Q8_0 for the
// quantised types) inside the op, as llama.cpp does.
//
// Sweeps distinct weight copies totalling >= --mb MB (so weights come from DRAM), all the
// copies' mul_mats in one graph (as in a model graph), one warm-up sweep, then the median of
// --sweeps timed sweeps. Prints one JSON line per batch size; median_ms and weight_bytes are per
// matrix. Built by scripts/cpu-peers.sh against llama.cpp's vendored ggml (llama-cpp-python sdist).
#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// xorshift: deterministic uniform values in [-1, 1) (cheap enough for the 0.5 G head weights)
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float urand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1ull << 23) - 1.0f;
}

int main(int argc, char **argv) {
    const char *type_s = "q4_0", *batch_s = "1,8,32";
    int out = 2048, inp = 4096, sweeps = 5, threads = 2, repack = 0;
    double mb = 512;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--type")) type_s = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--inp")) inp = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch_s = argv[i + 1];
        else if (!strcmp(argv[i], "--mb")) mb = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--sweeps")) sweeps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repack")) repack = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown arg %s\n", argv[i]); return 2; }
    }
    enum ggml_type type;
    if (!strcmp(type_s, "mxfp4")) type = GGML_TYPE_MXFP4;
    else if (!strcmp(type_s, "q4_0")) type = GGML_TYPE_Q4_0;
    else if (!strcmp(type_s, "q8_0")) type = GGML_TYPE_Q8_0;
    else if (!strcmp(type_s, "f16")) type = GGML_TYPE_F16;
    else if (!strcmp(type_s, "bf16")) type = GGML_TYPE_BF16;
    else { fprintf(stderr, "unknown --type %s\n", type_s); return 2; }

    ggml_backend_t cpu = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(cpu, threads);

    ggml_backend_buffer_type_t wbuft = ggml_backend_cpu_buffer_type();
    if (repack) {
        ggml_backend_reg_t reg = ggml_backend_cpu_reg();
        ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, 0);
        ggml_backend_dev_get_extra_bufts_t get_extra =
            (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
        ggml_backend_buffer_type_t found = NULL;
        for (ggml_backend_buffer_type_t *b = get_extra ? get_extra(dev) : NULL; b && *b; b++)
            if (!strcmp(ggml_backend_buft_name(*b), "CPU_REPACK")) found = *b;
        if (!found) { fprintf(stderr, "no CPU_REPACK buffer type in this build\n"); return 3; }
        wbuft = found;
    }

    // one random matrix in the target type, copied into every weight tensor
    const size_t row_bytes = ggml_row_size(type, inp);
    const size_t wbytes = row_bytes * (size_t)out;
    float *src = malloc(sizeof(float) * (size_t)out * inp);
    void *qdata = malloc(wbytes);
    for (size_t i = 0; i < (size_t)out * inp; i++) src[i] = 0.03f * urand();
    ggml_quantize_chunk(type, src, qdata, 0, out, inp, NULL);
    free(src);

    int copies = (int)ceil(mb * 1e6 / (double)wbytes);
    if (copies < 1) copies = 1;
    if (copies < 2 && wbytes < 256e6) copies = 2;

    struct ggml_init_params wp = { ggml_tensor_overhead() * (copies + 8), NULL, true };
    struct ggml_context *wctx = ggml_init(wp);
    struct ggml_tensor **W = malloc(sizeof(*W) * copies);
    for (int c = 0; c < copies; c++) W[c] = ggml_new_tensor_2d(wctx, type, inp, out);
    ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, wbuft);
    if (!wbuf) { fprintf(stderr, "weight alloc failed\n"); return 4; }
    ggml_backend_buffer_set_usage(wbuf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    for (int c = 0; c < copies; c++) ggml_backend_tensor_set(W[c], qdata, 0, wbytes); // repacks here
    free(qdata);

    const char *p = batch_s;
    while (*p) {
        int b = atoi(p);
        while (*p && *p != ',') p++;
        if (*p == ',') p++;

        struct ggml_init_params ap = { ggml_tensor_overhead() * (2 * copies + 8) + ggml_graph_overhead_custom(copies + 8, false), NULL, true };
        struct ggml_context *actx = ggml_init(ap);
        struct ggml_tensor *x = ggml_new_tensor_2d(actx, GGML_TYPE_F32, inp, b);
        ggml_set_input(x);
        struct ggml_cgraph *gf = ggml_new_graph_custom(actx, copies + 8, false);
        for (int c = 0; c < copies; c++) {
            struct ggml_tensor *y = ggml_mul_mat(actx, W[c], x);
            ggml_set_output(y);
            ggml_build_forward_expand(gf, y);
        }
        ggml_backend_buffer_t abuf = ggml_backend_alloc_ctx_tensors(actx, cpu);
        float *xs = malloc(sizeof(float) * (size_t)inp * b);
        for (size_t i = 0; i < (size_t)inp * b; i++) xs[i] = urand();
        ggml_backend_tensor_set(x, xs, 0, sizeof(float) * (size_t)inp * b);
        free(xs);

        if (ggml_backend_graph_compute(cpu, gf) != GGML_STATUS_SUCCESS) { fprintf(stderr, "compute failed\n"); return 5; }
        double *ts = malloc(sizeof(double) * sweeps);
        for (int s = 0; s < sweeps; s++) {
            double t0 = now_ms();
            ggml_backend_graph_compute(cpu, gf);
            ts[s] = (now_ms() - t0) / copies;
        }
        qsort(ts, sweeps, sizeof(double), cmp_d);
        printf("{\"impl\":\"ggml-%s%s\",\"format\":\"%s\",\"out\":%d,\"inp\":%d,\"batch\":%d,"
               "\"weight_bytes\":%zu,\"median_ms\":%.6f,\"runs\":%d,\"copies\":%d}\n",
               type_s, repack ? "-repack" : "", type_s, out, inp, b, wbytes, ts[sweeps / 2], sweeps, copies);
        fflush(stdout);
        free(ts);
        ggml_backend_buffer_free(abuf);
        ggml_free(actx);
    }
    ggml_backend_buffer_free(wbuf);
    ggml_free(wctx);
    ggml_backend_free(cpu);
    return 0;
}
