// Read-only bandwidth roofline for scripts/cpu-peers.sh: sum of a 1.07 GB double array
// (2^27 elements, far above any L3) on OMP_NUM_THREADS threads; one warm-up pass, then the
// median of 9 timed passes. Prints GB/s (1e9 bytes) on stdout.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    const size_t n = (size_t)1 << 27;
    double *a = aligned_alloc(64, n * sizeof(double));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (double)(i & 1023) * 1e-3;
    double t[9], sink = 0;
    for (int r = -1; r < 9; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += a[i];
        clock_gettime(CLOCK_MONOTONIC, &t1);
        sink += s;
        if (r >= 0) t[r] = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    }
    qsort(t, 9, sizeof(double), cmp_d);
    printf("%.2f\n", n * sizeof(double) / t[4] / 1e9);
    fprintf(stderr, "sink %g\n", sink);
    free(a);
    return 0;
}
