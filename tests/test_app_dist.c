/* Data-parallel ranks through `mpirun -np 2 --oversubscribe re2tal ...` (RE2TAL_BIN, through
 * tests/app_cli.h) on a tiny synthetic set:
 * 2 ranks x batch 1 train what 1 rank x batch 2 trains (losses and weights), deterministic
 * reductions give the same bits whatever the buckets and their timing, sharded inference writes
 * the one-process results file byte for byte, a 2-rank checkpoint resumes on 1 rank, and kill -9
 * of a rank ends the job quickly with a message naming the rank and host, leaving a checkpoint
 * that loads. Skipped (visibly) when mpirun or an MPI build is missing. */
#include "app_cli.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MPIRUN "mpirun -np 2 --oversubscribe --bind-to none "
#define TRAIN " train tiny.json " DATA " --quiet --set optim.epochs=10"
#define ONE_RANK BIN TRAIN " --set optim.batch_size=2"
#define TWO_RANKS MPIRUN BIN TRAIN " --set optim.batch_size=1"

static void setup(void) {
    if (getuid() == 0) { /* OpenMPI refuses root unless told twice */
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    }
    app_make_tiny_set("dist");
#ifdef __SANITIZE_ADDRESS__
    /* OpenMPI never frees what MPI_Init allocates and unloads its plugins at MPI_Finalize: those
     * leaks are suppressed by library, which needs the slow unwinder to see libmpi on their
     * stacks (every leak of ours is still reported) */
    app_write_file("lsan-mpi.supp", "leak:libmpi.so\nleak:libopen-pal.so\nleak:libopen-rte.so\n"
                   "leak:libpmix.so\nleak:libhwloc.so\nleak:libevent\nleak:mca_\n");
    char opts[2048];
    snprintf(opts, sizeof opts, "suppressions=%s/lsan-mpi.supp", g_dir);
    setenv("LSAN_OPTIONS", opts, 1);
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(opts, sizeof opts, "%s%sfast_unwind_on_malloc=0", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
    if (sh("command -v mpirun > /dev/null") != 0)
        cr_skip_test("mpirun not found (Debian: openmpi-bin); MPI tests skipped");
    if (sh(BIN " version | grep -q 'MPI: yes'") != 0)
        cr_skip_test("re2tal built without MPI (Debian: libopenmpi-dev); MPI tests skipped");
}

static void teardown(void) { app_remove_dir(); }

TestSuite(app_dist, .init = setup, .fini = teardown, .timeout = 600);

/* The "loss" values of a log, in order. */
static int losses(const char *log_name, double *out, int cap) {
    char *log = slurp(log_name);
    cr_assert_not_null(log, "no %s", log_name);
    int n = 0;
    for (char *p = log; (p = strstr(p, "\"loss\": ")) && n < cap; p += 8) out[n++] = atof(p + 8);
    free(log);
    return n;
}

/* Weights of two checkpoints: max |a - b| over all tensors, relative to the largest |a| of the
 * tensor, and whether every bit agrees. */
typedef struct weight_diff {
    double worst_rel;
    int identical;
    char worst_name[128];
} weight_diff;

static weight_diff compare_weights(const char *a_rel, const char *b_rel) {
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/%s", g_dir, a_rel);
    snprintf(pb, sizeof pb, "%s/%s", g_dir, b_rel);
    tal_tensor_set a = {0}, b = {0};
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_read(&a, pa, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_safetensors_read(&b, pb, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(a.count, b.count);
    weight_diff d = {0, 1, ""};
    for (int i = 0; i < a.count; i++) {
        const tal_named_tensor *x = &a.items[i], *y = tal_tensor_set_find(&b, x->name);
        cr_assert_not_null(y, "%s missing from %s", x->name, b_rel);
        int64_t n = tal_tensor_numel(x->t);
        cr_assert_eq(n, tal_tensor_numel(y->t));
        double scale = 0, diff = 0;
        for (int64_t j = 0; j < n; j++) {
            scale = fmax(scale, fabs(x->t.data[j]));
            diff = fmax(diff, fabs((double)x->t.data[j] - y->t.data[j]));
        }
        if (memcmp(x->t.data, y->t.data, sizeof(float) * (size_t)n)) d.identical = 0;
        double rel = scale > 0 ? diff / scale : diff;
        if (rel > d.worst_rel) {
            d.worst_rel = rel;
            snprintf(d.worst_name, sizeof d.worst_name, "%s", x->name);
        }
    }
    tal_tensor_set_free(&a);
    tal_tensor_set_free(&b);
    return d;
}

static void expect_same_losses(const char *a, const char *b, int want) {
    double la[64], lb[64];
    int na = losses(a, la, 64), nb = losses(b, lb, 64);
    cr_assert_eq(na, want, "%s: %d updates logged, expected %d", a, na, want);
    cr_assert_eq(nb, want, "%s: %d updates logged, expected %d", b, nb, want);
    for (int i = 0; i < want; i++) /* printed with 6 decimals: 2e-6 is one unit of the last */
        cr_expect(fabs(la[i] - lb[i]) <= 2e-6 + 1e-6 * fabs(la[i]),
                  "update %d: loss %.6f (%s) vs %.6f (%s)", i + 1, la[i], a, lb[i], b);
}

/* Deterministic sums (the default): per-clip gradients added in sample order, one rank as two,
 * so 20 updates give the same bits. */
Test(app_dist, two_ranks_train_what_one_rank_with_twice_the_batch_trains) {
    cr_assert_eq(sh(ONE_RANK " --set train.out_dir=one"), 0);
    cr_assert_eq(sh(TWO_RANKS " --set train.out_dir=two 2> two.err"), 0);
    expect_same_losses("one/log.jsonl", "two/log.jsonl", 20);
    weight_diff d = compare_weights("one/last/model.safetensors", "two/last/model.safetensors");
    cr_expect(d.identical, "weights after 20 updates differ by %.3g of %s's scale", d.worst_rel,
              d.worst_name);
    d = compare_weights("one/last/ema.safetensors", "two/last/ema.safetensors");
    cr_expect(d.identical, "EMA weights differ by %.3g of %s's scale", d.worst_rel, d.worst_name);
    char *err = slurp("two.err");
    cr_expect(err && strstr(err, "layout: 2 rank(s) on 1 host(s)") &&
                  strstr(err, "1 thread(s) per rank"), "no layout line: %s", err);
    free(err);
    char *log = slurp("two/log.jsonl");
    cr_expect(log && strstr(log, "\"ranks\": 2"), "the log says nothing of the ranks");
    free(log);
}

Test(app_dist, deterministic_reduction_gives_the_same_bits_whatever_the_buckets) {
    /* many small buckets sent while the backward runs, against one bucket sent at the end */
    cr_assert_eq(sh(TWO_RANKS " --set train.out_dir=a --set optim.epochs=3 "
                    "--set train.bucket_mb=0.01 --set train.overlap_reduce=1"), 0);
    cr_assert_eq(sh(TWO_RANKS " --set train.out_dir=b --set optim.epochs=3 "
                    "--set train.bucket_mb=100 --set train.overlap_reduce=0"), 0);
    weight_diff d = compare_weights("a/last/model.safetensors", "b/last/model.safetensors");
    cr_expect(d.identical, "deterministic reductions differ: %.3g of %s's scale", d.worst_rel,
              d.worst_name);
    /* MPI's own all-reduce, gradients accumulated inside the kernels: the same training up to
     * rounding. The losses agree to 1e-6 over 20 updates; weights are not compared, because
     * parameters whose gradient is zero in exact arithmetic (a LayerNorm bias before a softmax)
     * get rounding noise, which AdamW turns into steps of the learning rate. */
    cr_assert_eq(sh(ONE_RANK " --set train.out_dir=c1 --set train.deterministic_reduce=0"), 0);
    cr_assert_eq(sh(TWO_RANKS " --set train.out_dir=c2 --set train.deterministic_reduce=0 "
                    "--set train.bucket_mb=0.01"), 0);
    expect_same_losses("c1/log.jsonl", "c2/log.jsonl", 20);
}

/* The backward reports gradients final in its own order (SlowFast runs both pathways stage by
 * stage, not in declaration order): buckets sent early must hold final gradients, so tiny
 * buckets sent during the backward give the bits of one bucket sent after it. Batch 2 per rank:
 * the earlier clip's gradients are added back bucket by bucket too. */
Test(app_dist, early_buckets_hold_final_gradients_on_every_backbone) {
    const char *backbones[] = {
        "--set backbone.preset=resnet3d_small --set backbone.depths=[2,2]",
        "--set backbone.preset=slowfast_r50 --set backbone.depths=[2,2] "
        "--set backbone.embed_dim=8",
    };
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(sh(MPIRUN BIN TRAIN " %s --set optim.epochs=1 --set optim.batch_size=2 "
                        "--set train.out_dir=e%d --set train.bucket_mb=0.001", backbones[i], i),
                     0, "%s", backbones[i]);
        cr_assert_eq(sh(MPIRUN BIN TRAIN " %s --set optim.epochs=1 --set optim.batch_size=2 "
                        "--set train.out_dir=l%d --set train.bucket_mb=100 "
                        "--set train.overlap_reduce=0", backbones[i], i), 0, "%s", backbones[i]);
        char a[64], b[64];
        snprintf(a, sizeof a, "e%d/last/model.safetensors", i);
        snprintf(b, sizeof b, "l%d/last/model.safetensors", i);
        weight_diff d = compare_weights(a, b);
        cr_expect(d.identical, "%s: early buckets differ by %.3g of %s's scale", backbones[i],
                  d.worst_rel, d.worst_name);
    }
}

Test(app_dist, sharded_infer_and_extract_equal_one_process) {
    cr_assert_eq(sh(BIN TRAIN " --set train.out_dir=r --set optim.epochs=2"), 0);
    cr_assert_eq(sh("printf 'not a video' > data/videos/broken.mp4 && ls data/videos/synth_*.mp4 "
                    "> list.txt && echo data/videos/broken.mp4 >> list.txt"), 0);
    cr_expect_eq(sh(BIN " infer --model r --list list.txt --out one.json --srt srt1 --quiet "
                    "2> one.err"), 1, "a broken video: exit 1");
    cr_expect_eq(sh(MPIRUN BIN " infer --model r --list list.txt --out two.json --srt srt2 "
                    "--quiet 2> two.err"), 1, "a broken video: exit 1 on every rank");
    cr_expect_eq(sh("cmp one.json two.json"), 0, "sharded results differ from one process's");
    cr_expect_eq(sh("diff -r srt1 srt2"), 0, "subtitles differ");
    cr_expect_eq(sh("test $(ls srt2 | wc -l) -eq 6"), 0, "one subtitle file per good video");
    char *err = slurp("two.err");
    cr_assert_not_null(err);
    char *first = strstr(err, "broken.mp4");
    cr_expect(first && !strstr(first + 1, "broken.mp4"), "the broken video is reported once:\n%s",
              err);
    free(err);
    /* a folder of videos, features by whichever rank took the video */
    cr_expect_eq(sh(BIN " extract --model r data/videos --out f1 --quiet 2> /dev/null"), 1);
    cr_expect_eq(sh(MPIRUN BIN " extract --model r data/videos --out f2 --quiet 2> x2.err"), 1);
    cr_expect_eq(sh("diff -r f1 f2"), 0, "sharded features differ");
    cr_expect_eq(sh("test $(ls f2/*.npy | wc -l) -eq 6"), 0, "one .npy per good video");
    cr_expect_eq(sh("test $(grep -c 'skipped video' x2.err) -eq 1"), 0, "reported once");
}

Test(app_dist, a_two_rank_checkpoint_resumes_on_one_rank) {
    cr_assert_eq(sh(ONE_RANK " --set train.out_dir=one --set optim.epochs=4"), 0);
    cr_assert_eq(sh(TWO_RANKS " --set train.out_dir=r --set optim.epochs=4 "
                    "--set train.stop_after=3"), 130, "a stopped run exits 130 on every rank");
    cr_assert_eq(sh(ONE_RANK " --set train.out_dir=r --set optim.epochs=4 --resume"), 0);
    expect_same_losses("one/log.jsonl", "r/log.jsonl", 8);
    weight_diff d = compare_weights("one/last/model.safetensors", "r/last/model.safetensors");
    cr_expect(d.identical, "resumed on one rank: %.3g of %s's scale", d.worst_rel, d.worst_name);
}

/* A training video that cannot be decoded costs the rank that draws it its clip, nothing more:
 * that rank joins the reduction with what it has, no rank waits at a collective. */
Test(app_dist, a_bad_training_video_on_one_rank_is_skipped_without_a_hang) {
    cr_assert_eq(sh("printf 'not a video' > data/videos/synth_00000.mp4"), 0);
    cr_assert_eq(sh("timeout 120 " TWO_RANKS " --set train.out_dir=b --set optim.epochs=3 "
                    "2> b.err"), 0);
    double l[16];
    cr_expect_eq(losses("b/log.jsonl", l, 16), 6, "every update ran");
    char *err = slurp("b.err");
    cr_expect(err && strstr(err, "skipped a training clip (synth_00000)"), "%s", err);
    free(err);
}

/* PID of rank `rank` among mpirun's children (from its OMPI_COMM_WORLD_RANK), or -1. */
static pid_t rank_pid(pid_t mpirun, int rank) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    char want[64], path[300], buf[1 << 15];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    pid_t found = -1;
    while (d && found < 0 && (e = readdir(d))) {
        pid_t pid = (pid_t)atoi(e->d_name), ppid = -1;
        if (pid <= 0) continue;
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fscanf(f, "%*d (%*[^)]) %*c %d", &ppid) != 1) ppid = -1;
        fclose(f);
        if (ppid != mpirun) continue;
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        if (!(f = fopen(path, "rb"))) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
            buf[n] = 0;
            if (!strcmp(buf + i, want)) found = pid;
        }
    }
    if (d) closedir(d);
    return found;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Starts a long 2-rank run into folder `out` (stderr to out.err), waits for its first
 * checkpoint, sends `sig` to rank 1 and waits up to 60 s for the job: its wait status, and
 * the seconds it took to end in *took (> 60: it did not end, and was killed). */
static int signal_rank_1(const char *out, int sig, double *took) {
    pid_t job = fork();
    if (job == 0) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "cd '%s' && exec " TWO_RANKS " --set train.out_dir=%s "
                 "--set optim.epochs=1000 2> %s.err", g_dir, out, out);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    char state[1200];
    snprintf(state, sizeof state, "%s/%s/last/state.json", g_dir, out);
    pid_t victim = -1;
    for (int i = 0; i < 600 && (victim < 0 || access(state, R_OK) != 0); i++) {
        usleep(100000);
        if (victim < 0) victim = rank_pid(job, 1);
    }
    if (victim < 0 || access(state, R_OK) != 0) kill(job, SIGKILL);
    cr_assert_gt(victim, 0, "rank 1 of mpirun %d not found", (int)job);
    cr_assert_eq(access(state, R_OK), 0, "no checkpoint written within 60 s");
    usleep(300000);
    double t0 = now_s();
    kill(victim, sig);
    int status = 0, waited = 0;
    while (now_s() - t0 < 60 && !(waited = waitpid(job, &status, WNOHANG) == job)) usleep(50000);
    *took = now_s() - t0;
    if (!waited) {
        kill(job, SIGKILL);
        waitpid(job, &status, 0);
        *took = 1e9;
    }
    return status;
}

/* Ctrl-C reaches one rank only: the ranks agree on it in the next reduction, and all stop after
 * that update with a checkpoint of it (no rank waits forever in an all-reduce). */
Test(app_dist, a_signal_on_one_rank_stops_every_rank_after_the_same_update) {
    double took = 0;
    int status = signal_rank_1("s", SIGTERM, &took);
    cr_assert(took <= 30, "the job went on %.1f s after SIGTERM to rank 1", took);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 130, "exit %d, expected 130",
              WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
    double l[4096];
    int n = losses("s/log.jsonl", l, 4096);
    char *state = slurp("s/last/state.json");
    cr_assert_not_null(state);
    char *step = strstr(state, "\"step\":");
    cr_assert_not_null(step);
    cr_expect_eq(atoi(step + 7), n, "the checkpoint is not of the last update (%d): %s", n, state);
    free(state);
    cr_expect_eq(sh(TWO_RANKS " --set train.out_dir=s --set optim.epochs=1000 "
                    "--set train.stop_after=1 --resume"), 130);
}

Test(app_dist, kill_9_of_a_rank_ends_the_job_and_the_checkpoint_loads) {
    double took = 0;
    int status = signal_rank_1("k", SIGKILL, &took);
    cr_assert(took <= 30, "the job went on %.1f s after kill -9 of rank 1", took);
    cr_expect(!WIFEXITED(status) || WEXITSTATUS(status) != 0, "the job must fail");
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    char *err = slurp("k.err");
    cr_assert_not_null(err);
    cr_expect(strstr(err, "rank 1") && strstr(err, host),
              "the message must name rank 1 and host %s:\n%s", host, err);
    cr_log_info("kill -9 of rank 1: job over in %.2f s", took);
    free(err);
    /* the last checkpoint is complete: training resumes from it */
    cr_expect_eq(sh(ONE_RANK " --set train.out_dir=k --set optim.epochs=1000 "
                    "--set train.stop_after=1 --resume"), 130);
}

/* The 2-rank training again, each rank in its own network namespace with its own host name,
 * the two joined by a veth pair: the launch (OpenMPI's rsh agent, here `ip netns exec`), the
 * out-of-band wiring and the gradients cross a network interface as between two machines.
 * Needs root and iproute2 (skipped otherwise). */
Test(app_dist, two_ranks_across_network_namespaces_train_the_same_bits) {
    if (getuid() != 0 || sh("command -v ip > /dev/null") != 0)
        cr_skip_test("network namespaces need root and iproute2");
    int id = (int)getpid() % 100000;
    char a[32], b[32], va[16], vb[16];
    snprintf(a, sizeof a, "r2t-%d-a", id); /* host names: letters, digits and '-' only */
    snprintf(b, sizeof b, "r2t-%d-b", id);
    snprintf(va, sizeof va, "r2t%da", id);
    snprintf(vb, sizeof vb, "r2t%db", id);
    if (sh("ip netns add %s 2> /dev/null", a) != 0)
        cr_skip_test("cannot create network namespaces here (no CAP_SYS_ADMIN)");
    int ok = sh("ip netns add %s && ip link add %s type veth peer name %s && "
                "ip link set %s netns %s && ip link set %s netns %s && "
                "ip -n %s addr add 169.254.77.1/30 dev %s && ip -n %s addr add 169.254.77.2/30 "
                "dev %s && ip -n %s link set %s up && ip -n %s link set %s up && "
                "ip -n %s link set lo up && ip -n %s link set lo up",
                b, va, vb, va, a, vb, b, a, va, b, vb, a, va, b, vb, a, b) == 0;
    /* the launch agent: "host" = a namespace, entered with its own host name */
    app_write_file("netns-rsh", "#!/bin/sh\nhost=\"$1\"; shift\nexec ip netns exec \"$host\" "
                   "unshare --uts sh -c \"hostname $host && exec $*\"\n");
    ok = ok && sh("chmod +x netns-rsh && printf '%s slots=1\\n%s slots=1\\n' > hosts", a, b) == 0;
    int rc = -1;
    if (ok) {
        cr_assert_eq(sh(ONE_RANK " --set train.out_dir=one"), 0);
        rc = sh("ip netns exec %s unshare --uts sh -c 'hostname %s && exec mpirun -np 2 "
                "--hostfile hosts --mca plm_rsh_agent \"$PWD/netns-rsh\" --mca btl tcp,self "
                BIN TRAIN " --set optim.batch_size=1 --set train.out_dir=two' 2> two.err", a, a);
        sh("ip -n %s -s link show %s | awk '/RX:/ {getline; print $1}' > rx_bytes", a, va);
    }
    sh("ip netns del %s; ip netns del %s", a, b); /* the veth pair goes with them */
    cr_assert(ok, "could not wire the namespaces");
    char *err = slurp("two.err");
    cr_expect_eq(rc, 0, "2 ranks across namespaces failed:\n%s", err ? err : "");
    char want[128];
    snprintf(want, sizeof want, "2 host(s) (%s: rank 0, %s: rank 1)", a, b);
    cr_expect(err && strstr(err, want), "layout: expected '%s' in:\n%s", want, err);
    free(err);
    char *rx = slurp("rx_bytes");
    cr_expect(rx && atol(rx) > 1000000, "only %s bytes crossed the veth pair", rx ? rx : "?");
    cr_log_info("%ld bytes crossed the veth pair", rx ? atol(rx) : 0L);
    free(rx);
    expect_same_losses("one/log.jsonl", "two/log.jsonl", 20);
    weight_diff d = compare_weights("one/last/model.safetensors", "two/last/model.safetensors");
    cr_expect(d.identical, "across namespaces: %.3g of %s's scale", d.worst_rel, d.worst_name);
}

/* ---------------------------------------------------------------- video lists (no MPI) -- */
static void setup_lists(void) { app_make_tiny_set("lists"); }

TestSuite(app_video_list, .init = setup_lists, .fini = teardown, .timeout = 600);

Test(app_video_list, folders_and_list_files_name_the_same_videos_as_paths) {
    cr_assert_eq(sh(BIN TRAIN " --set train.out_dir=r --set optim.epochs=1"), 0);
    cr_assert_eq(sh("mkdir -p v && cp data/videos/synth_00001.mp4 data/videos/synth_00004.mp4 v/ "
                    "&& echo notes > v/readme.txt && printf '# two videos\\n\\n  v/synth_00004.mp4 "
                    "\\nv/synth_00001.mp4\\n' > list.txt"), 0);
    cr_assert_eq(sh(BIN " infer --model r v/synth_00001.mp4 v/synth_00004.mp4 --out a.json "
                    "--quiet"), 0);
    cr_assert_eq(sh(BIN " infer --model r v --out b.json --quiet"), 0, "a folder (readme.txt is "
                 "not a video and is left out)");
    cr_assert_eq(sh(BIN " infer --model r --list list.txt --out c.json --quiet"), 0);
    cr_expect_eq(sh("cmp a.json b.json"), 0, "folder: other results than the paths");
    char *a = slurp("a.json"), *c = slurp("c.json");
    cr_assert(a && c);
    cr_expect(strstr(c, "synth_00001") && strstr(c, "synth_00004"), "%s", c);
    free(a);
    free(c);
}

Test(app_video_list, bad_lists_and_folders_name_the_file) {
    cr_assert_eq(sh("mkdir -p empty && echo x > empty/notes.txt"), 0);
    cr_expect_eq(sh(BIN " infer --model r --list missing.txt 2> e1"), 1);
    cr_expect_eq(sh("grep -q 'video list: missing.txt: cannot open' e1"), 0);
    cr_expect_eq(sh(BIN " extract --model r empty --out f 2> e2"), 1);
    cr_expect_eq(sh("grep -q 'empty: no video files in the folder' e2"), 0);
}
