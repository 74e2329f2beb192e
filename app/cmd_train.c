/* app/cmd_train.c: `re2tal train CONFIG.json [--set key=value ...] [--resume]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/commands.h"
#include "app/device.h"
#include "app/trainer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal train CONFIG.json [--set KEY=VALUE ...] [--resume] [--quiet] [--log-json]\n"
            "       re2tal train --help-config\n\n"
            "Trains the reversible backbone and the ActionFormer head end to end from video files:\n"
            "sampler -> decoder (prefetch thread) -> backbone -> head -> losses -> AdamW (backbone\n"
            "and head learning rates, no decay on norms and biases), warm-up + cosine, clipping,\n"
            "accumulation, EMA weights; validates every train.eval_every epochs and keeps the\n"
            "best and last checkpoints in train.out_dir (config.json, classes.txt, log.jsonl,\n"
            "last/, best/). Ctrl-C saves a checkpoint; --resume continues exactly where it stopped.\n"
            "Under `mpirun -np N` (or srun) the ranks train data-parallel: optim.batch_size is per\n"
            "rank, gradients are all-reduced (train.deterministic_reduce, train.bucket_mb,\n"
            "train.overlap_reduce), rank 0 writes the run folder; --resume takes any rank count.\n\n"
            "  --set KEY=VALUE  override a config key (backbone.X and head.X edit those sections)\n"
            "  --device D       cpu, cuda or cuda:N (overrides the config's `device` key)\n"
            "  --resume         continue from train.out_dir/last\n"
            "  --quiet          no progress bar\n"
            "  --log-json       also print the JSON log lines on stdout\n"
            "  --help-config    list every key with its default\n");
}

static int cmd_train(int argc, char **argv) {
    const char *config = NULL;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    tal_train_opts o = {0};
    for (int i = 1; i < argc; i++) {
        int dev_ok;
        if (tal_device_option_parse("train", argc, argv, &i, &dev_ok)) {
            if (dev_ok) continue;
            free(sets);
            return 2;
        }
        if (tal_is_help(argv[i])) {
            usage(stdout);
            free(sets);
            return 0;
        } else if (!strcmp(argv[i], "--help-config")) {
            tal_run_config c;
            tal_run_config_default(&c);
            int n;
            const tal_cfg_key *keys = tal_run_config_keys(&n);
            printf("keys (configs/README.md explains them; \"backbone\" and \"head\" sections take "
                   "backbone/ and heads/ keys).\nRanges: [a, b] includes its ends, (a, b) "
                   "excludes them; every value is checked before any data is read.\n");
            tal_cfg_print_help(stdout, &c, keys, n);
            free(sets);
            return 0;
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            sets[o.n_sets++] = argv[++i];
        } else if (!strcmp(argv[i], "--resume")) {
            o.resume = 1;
        } else if (!strcmp(argv[i], "--quiet")) {
            o.quiet = 1;
        } else if (!strcmp(argv[i], "--log-json")) {
            o.log_json = 1;
        } else if (argv[i][0] == '-' || config) {
            fprintf(stderr, "re2tal train: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            free(sets);
            return 2;
        } else {
            config = argv[i];
        }
    }
    if (!config) {
        usage(stderr);
        free(sets);
        return 2;
    }
    tal_run_config rc;
    tal_err err = {0};
    int code = 0;
    if (tal_run_config_read(&rc, config, sets, o.n_sets, &err) != TAL_OK) {
        fprintf(stderr, "re2tal train: %s\n", err.msg);
        free(sets);
        return strncmp(err.msg, "--set", 5) ? 1 : 2; /* a bad --set is a usage error */
    }
    o.config_path = config;
    o.sets = sets;
    tal_train_result res;
    if (tal_train_run(&rc, &o, &res, &err) != TAL_OK) {
        fprintf(stderr, "re2tal train: %s\n", err.msg);
        code = 1;
    } else if (res.interrupted) {
        code = 130;
    } else if (!o.quiet) {
        fprintf(stderr, "done: %lld updates in %.1f s; best validation average mAP %s%.4f\n"
                        "checkpoints: %s/best and %s/last; run `re2tal infer --model %s VIDEO...`\n",
                (long long)res.steps, res.seconds, res.best_map < 0 ? "(not evaluated) " : "",
                res.best_map < 0 ? 0 : res.best_map, rc.out_dir, rc.out_dir, rc.out_dir);
    }
    free(sets);
    return code;
}
TAL_COMMAND("train", 50, "train backbone + head end to end from video files", cmd_train)
