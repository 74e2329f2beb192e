/* bench/bench_data_synth.c: speed of the data module: the synthetic dataset (render + encode,
 * videos per second on 1 thread vs all threads, the parallel speed-up against the 1-thread
 * baseline) and the annotation reader (our load vs a bare cJSON parse of the same bytes).
 * usage: bench_data_synth OUT_DIR [N_VIDEOS=40] [ANNOTATION.json ...] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "data/data.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double synth_seconds(const char *out, int n_videos, int threads, double *video_s) {
    tal_synth_opts o;
    tal_synth_opts_default(&o);
    o.n_videos = n_videos;
    o.seed = 1;
    omp_set_num_threads(threads);
    tal_err err = {0};
    double t0 = now_s();
    if (tal_synth_generate(&o, out, NULL, NULL, &err) != TAL_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    double dt = now_s() - t0;
    *video_s = 0;
    for (int v = 0; v < n_videos; v++) {
        tal_synth_plan p;
        tal_synth_plan_video(&p, &o, v);
        *video_s += p.n_frames / o.fps;
    }
    return dt;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT_DIR [N_VIDEOS] [ANNOTATION.json ...]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 40;
    int max_threads = omp_get_max_threads();
    double vs;
    printf("synth: %d videos, 96x96, 25 fps, 20-90 s, codec %s\n", n, tal_synth_default_codec());
    double t1 = synth_seconds(argv[1], n, 1, &vs);
    printf("  1 thread : %6.2f s  %6.1f videos/s  %7.0f frames/s  (baseline)\n", t1, n / t1,
           vs * 25 / t1);
    double tn = synth_seconds(argv[1], n, max_threads, &vs);
    printf("  %d threads: %6.2f s  %6.1f videos/s  %7.0f frames/s  speed-up x%.2f; "
           "200 videos ~ %.0f s\n",
           max_threads, tn, n / tn, vs * 25 / tn, t1 / tn, tn * 200.0 / n);
    for (int i = 3; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)len + 1);
        if (fread(buf, 1, (size_t)len, f) != (size_t)len) return 1;
        buf[len] = 0;
        fclose(f);
        double best_c = 1e9, best_l = 1e9;
        int nv = 0;
        for (int r = 0; r < 5; r++) {
            double t0 = now_s();
            cJSON *j = cJSON_Parse(buf);
            double t_c = now_s() - t0;
            cJSON_Delete(j);
            tal_dataset *ds = NULL;
            tal_err err = {0};
            t0 = now_s();
            if (tal_dataset_parse(&ds, argv[i], buf, (size_t)len, &err) != TAL_OK) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
            }
            double t_l = now_s() - t0;
            nv = ds->n_videos;
            tal_dataset_destroy(ds);
            if (t_c < best_c) best_c = t_c;
            if (t_l < best_l) best_l = t_l;
        }
        printf("anno: %s (%.1f MiB, %d videos): load %.1f ms, bare cJSON parse %.1f ms "
               "(baseline), x%.2f\n",
               argv[i], len / 1048576.0, nv, best_l * 1e3, best_c * 1e3, best_l / best_c);
        free(buf);
    }
    return 0;
}
