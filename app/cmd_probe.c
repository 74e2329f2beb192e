/* app/cmd_probe.c: `re2tal probe VIDEO...`: metadata as JSON lines; unreadable files are
 * reported on stderr and the others still printed. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/commands.h"
#include "decode/decode.h"

static void usage(FILE *out) {
    fprintf(out, "usage: re2tal probe [--count] [--decode-threads N] VIDEO...\n"
                 "Prints one JSON line of metadata per video: duration, start, time base, frame\n"
                 "rates, frame count, size, rotation, codec, whether the frame rate is variable.\n"
                 "The frame count is exact only with --count, which decodes the whole stream\n"
                 "(n_frames_from \"count\"); otherwise it is the container's (\"header\", when its\n"
                 "index lies whole inside the file) or an estimate (\"estimate\": duration x fps,\n"
                 "or the frames indexed inside a file cut short). frames_dropped: frames whose\n"
                 "timestamp lay far outside the duration or their neighbours (a corrupt stamp);\n"
                 "corrupt_packets: packets the decoder rejected (both seen only while decoding).\n"
                 "Exit 1 if any file failed.\n");
}

static int cmd_probe(int argc, char **argv) {
    int count = 0, n_failed = 0, n_files = 0;
    tal_decode_opts opts = {0};
    for (int i = 1; i < argc; i++) /* options apply to every file, wherever they stand */
        if (!strcmp(argv[i], "--count")) count = 1;
    for (int i = 1; i < argc; i++) {
        if (tal_is_help(argv[i])) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--count")) continue;
        if (!strcmp(argv[i], "--decode-threads") && i + 1 < argc) {
            opts.threads = atoi(argv[++i]);
            continue;
        }
        if (argv[i][0] == '-') {
            fprintf(stderr, "re2tal probe: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        n_files++;
        tal_err err = {0};
        tal_decoder *dec = NULL;
        opts.count_frames = count;
        if (tal_decoder_open(&dec, argv[i], &opts, &err) != TAL_OK) {
            fprintf(stderr, "re2tal probe: %s\n", err.msg);
            n_failed++;
            continue;
        }
        const tal_video_info *in = tal_decoder_info(dec);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", argv[i]);
        cJSON_AddNumberToObject(o, "duration_s", in->duration_s);
        cJSON_AddNumberToObject(o, "start_s", in->start_s);
        cJSON_AddNumberToObject(o, "time_base", in->time_base);
        cJSON_AddNumberToObject(o, "avg_fps", in->avg_fps);
        cJSON_AddNumberToObject(o, "real_fps", in->real_fps);
        cJSON_AddNumberToObject(o, "n_frames", (double)in->n_frames);
        cJSON_AddBoolToObject(o, "n_frames_exact", in->n_frames_counted);
        cJSON_AddStringToObject(o, "n_frames_from", in->n_frames_counted ? "count"
                                                    : in->n_frames_exact ? "header"
                                                                         : "estimate");
        const tal_decode_stats *st = tal_decoder_stats(dec);
        cJSON_AddNumberToObject(o, "frames_dropped", (double)st->dropped_frames);
        cJSON_AddNumberToObject(o, "corrupt_packets", (double)st->corrupt_packets);
        cJSON_AddNumberToObject(o, "width", in->width);
        cJSON_AddNumberToObject(o, "height", in->height);
        cJSON_AddNumberToObject(o, "rotation", in->rotation);
        cJSON_AddStringToObject(o, "codec", in->codec);
        cJSON_AddStringToObject(o, "pix_fmt", in->pix_fmt);
        cJSON_AddBoolToObject(o, "variable_fps", in->variable_fps);
        char *s = cJSON_PrintUnformatted(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
        tal_decoder_close(dec);
    }
    if (!n_files) {
        usage(stderr);
        return 2;
    }
    return n_failed ? 1 : 0;
}
TAL_COMMAND("probe", 30, "print video metadata as JSON lines (--count: exact frame count)", cmd_probe)
