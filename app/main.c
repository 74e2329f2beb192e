/* app/main.c: the re2tal binary: global options, then dispatch to a registered subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "app/commands.h"
#include "app/device.h"
#include "app/dist.h"
#include "nn/nn.h"

#define MAX_COMMANDS 64
static const tal_command *g_commands[MAX_COMMANDS];
static int g_n_commands;

void tal_command_register(const tal_command *cmd) {
    TAL_ASSERT(g_n_commands < MAX_COMMANDS);
    int i = g_n_commands++;
    while (i > 0 && g_commands[i - 1]->order > cmd->order) { /* keep --help order */
        g_commands[i] = g_commands[i - 1];
        i--;
    }
    g_commands[i] = cmd;
}

int tal_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

static void print_usage(FILE *out) {
    fprintf(out,
            "re2tal %s: temporal action localization trained end to end, with reversible video\n"
            "backbones (Re2TAL, CVPR 2023).\n\n"
            "usage: re2tal [--threads N] [--device D] [--allow-nonfinite] COMMAND [ARGS...]\n\n"
            "commands:\n",
            RE2TAL_VERSION);
    for (int i = 0; i < g_n_commands; i++)
        fprintf(out, "  %-12s %s\n", g_commands[i]->name, g_commands[i]->summary);
    fprintf(out,
            "\noptions:\n"
            "  --threads N  threads for OpenMP and OpenBLAS (default: RE2TAL_THREADS, else all "
            "cores)\n"
            "  --device D   where models compute: cpu, cuda (device 0) or cuda:N; overrides the\n"
            "               run config's `device` key (train, infer, extract, demo, plan, bench)\n"
            "  --allow-nonfinite  load weights that hold NaN or Inf (refused by default: they\n"
            "               come from a diverged run); may also stand after the command\n"
            "  -h, --help   this text; `re2tal COMMAND --help` explains one command\n"
            "\nenvironment: RE2TAL_MAX_INPUT_BYTES (default 1G) bounds the JSON and text files\n"
            "read (annotations, results, configs, class lists, .npy features).\n");
}

static int cmd_version(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: re2tal version\n");
        return 2;
    }
#ifdef TAL_HAVE_CUDA
    const char *cuda = "yes";
#else
    const char *cuda = "no";
#endif
#ifdef TAL_HAVE_MPI
    const char *mpi = "yes";
#else
    const char *mpi = "no";
#endif
    printf("re2tal %s (CUDA: %s, MPI: %s, threads: %d)\n", RE2TAL_VERSION, cuda, mpi,
           tal_threads_get());
    return 0;
}
TAL_COMMAND("version", 900, "print the version and build options", cmd_version)

/* Under mpirun: threads per rank from --threads / RE2TAL_THREADS, else the host's cores shared
 * among its ranks. */
static int rank_threads(int threads) {
    if (threads > 0 || getenv("RE2TAL_THREADS") || tal_dist_shard().world == 1) return threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n = (int)(cores / tal_dist_local_ranks());
    return n > 0 ? n : 1;
}

static int run(int argc, char **argv);

int main(int argc, char **argv) {
    if (tal_dist_init(&argc, &argv) != 0) return 1;
    int code = run(argc, argv);
    tal_dist_finalize();
    return code;
}

static int run(int argc, char **argv) {
    int i = 1, threads = 0;
    while (i < argc && argv[i][0] == '-') {
        if (tal_is_help(argv[i])) {
            print_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            char *end;
            long n = strtol(argv[i + 1], &end, 10);
            if (*end || n < 1 || n > 4096) {
                fprintf(stderr, "re2tal: --threads wants a whole number from 1 to 4096, got '%s'\n",
                        argv[i + 1]);
                return 2;
            }
            threads = (int)n;
            i += 2;
        } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            tal_err err = {0};
            if (tal_device_override_set(argv[i + 1], &err) != TAL_OK) {
                fprintf(stderr, "re2tal: --device: %s\n", err.msg);
                return 2;
            }
            i += 2;
        } else if (!strcmp(argv[i], "--allow-nonfinite")) {
            tal_safetensors_allow_nonfinite(1);
            i++;
        } else if (!strcmp(argv[i], "--version")) {
            return cmd_version(1, argv);
        } else {
            fprintf(stderr, "re2tal: unknown option '%s' (see re2tal --help)\n", argv[i]);
            return 2;
        }
    }
    tal_threads_set(rank_threads(threads));
    /* every command that loads weights takes --allow-nonfinite: taken out here, once */
    int n = i;
    for (int j = i; j < argc; j++) {
        if (!strcmp(argv[j], "--allow-nonfinite")) tal_safetensors_allow_nonfinite(1);
        else argv[n++] = argv[j];
    }
    argc = n;
    argv[argc] = NULL;
    if (i >= argc) {
        print_usage(stderr);
        return 2;
    }
    if (tal_dist_shard().world > 1) tal_dist_print_layout(stderr, tal_threads_get());
    for (int c = 0; c < g_n_commands; c++)
        if (!strcmp(g_commands[c]->name, argv[i])) return g_commands[c]->run(argc - i, argv + i);
    fprintf(stderr, "re2tal: unknown command '%s' (see re2tal --help)\n", argv[i]);
    return 2;
}
