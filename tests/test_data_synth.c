/* tests/test_data_synth.c: the synthetic dataset: motion-only class pairs, plans that fit their
 * videos, the action object drawn exactly inside its annotated frames, same seed -> same bytes,
 * the annotation file agreeing with the plans, and bad options rejected by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "data/data.h"
#include "decode/decode.h"
#include "testlib.h"

static tal_synth_opts small_opts(uint64_t seed) {
    tal_synth_opts o;
    tal_synth_opts_default(&o);
    o.n_videos = 3;
    o.n_classes = 6;
    o.seed = seed;
    o.size = 64;
    o.min_len_s = 4;
    o.max_len_s = 6;
    o.min_action_s = 0.5;
    o.max_action_s = 1.5;
    o.val_fraction = 0.34; /* every 3rd video is validation */
    return o;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

Test(data_synth, classes_come_in_motion_only_pairs) {
    for (int K = 2; K <= TAL_SYNTH_MAX_CLASSES; K++) {
        int paired = 0;
        for (int k = 0; k < K; k++) {
            tal_synth_class a, b;
            tal_synth_class_info(&a, k, K);
            if (a.partner < 0) {
                cr_assert_eq(a.motion, TAL_MOTION_STILL);
                continue;
            }
            paired++;
            tal_synth_class_info(&b, a.partner, K);
            cr_assert_eq(b.partner, k, "pairing must be mutual (K=%d, k=%d)", K, k);
            cr_assert_eq(a.shape, b.shape, "a pair shares its shape");
            cr_assert(!memcmp(a.rgb, b.rgb, 3), "a pair shares its colour");
            cr_assert_neq(a.motion, b.motion, "a pair differs in motion");
            cr_assert_str_neq(a.name, b.name);
        }
        cr_assert(2 * paired >= K, "K=%d: only %d paired classes", K, paired);
        /* Different pairs look different: (shape, colour) is unique per pair. */
        for (int p = 0; p < K / 2; p++) {
            for (int q = p + 1; q < K / 2; q++) {
                tal_synth_class a, b;
                tal_synth_class_info(&a, 2 * p, K);
                tal_synth_class_info(&b, 2 * q, K);
                cr_assert(a.shape != b.shape || memcmp(a.rgb, b.rgb, 3),
                          "K=%d: pairs %d and %d look alike", K, p, q);
            }
        }
    }
}

Test(data_synth, plans_fit_and_follow_the_options) {
    tal_synth_opts o;
    tal_synth_opts_default(&o);
    int n_inst = 0, labels[TAL_SYNTH_MAX_CLASSES] = {0}, n_val = 0;
    for (int v = 0; v < 300; v++) {
        tal_synth_plan p;
        tal_synth_plan_video(&p, &o, v);
        cr_assert_geq(p.n_frames, (int)(o.min_len_s * o.fps) - 1);
        cr_assert_leq(p.n_frames, (int)(o.max_len_s * o.fps) + 1);
        cr_assert_leq(p.n_instances, o.max_instances);
        n_val += p.subset == TAL_SUBSET_VALIDATION;
        for (int i = 0; i < p.n_instances; i++) {
            const tal_synth_instance *in = &p.inst[i];
            int len = in->end_frame - in->start_frame;
            cr_assert_geq(len, (int)(o.min_action_s * o.fps) - 1);
            cr_assert_leq(len, (int)(o.max_action_s * o.fps) + 1);
            cr_assert_geq(in->start_frame, i ? p.inst[i - 1].end_frame : 0, "overlap");
            cr_assert_leq(in->end_frame, p.n_frames);
            cr_assert(in->label >= 0 && in->label < o.n_classes);
            labels[in->label]++;
            n_inst++;
        }
    }
    cr_assert_eq(n_val, 60, "every 5th video is validation, got %d of 300", n_val);
    cr_assert_gt(n_inst, 300, "about 3 instances per video expected, got %d", n_inst);
    for (int k = 0; k < o.n_classes; k++) cr_assert_gt(labels[k], 20, "class %d rare", k);
}

/* The action layer is drawn in the annotated frames and nowhere else; blinking objects are on
 * at their first frame; moving objects stay inside the frame. */
Test(data_synth, objects_drawn_exactly_inside_segments) {
    tal_synth_opts o;
    tal_synth_opts_default(&o);
    o.n_classes = 13;
    uint8_t *rgb = malloc((size_t)3 * o.size * o.size);
    uint8_t *tex = malloc(TAL_SYNTH_TEXTURE * TAL_SYNTH_TEXTURE);
    int checked = 0;
    for (int v = 0; v < 12; v++) {
        tal_synth_plan p;
        tal_synth_plan_video(&p, &o, v);
        tal_synth_texture(tex, &p);
        for (int f = 0; f < p.n_frames; f++) {
            int n = tal_synth_render(rgb, tex, &o, &p, f, TAL_SYNTH_ACTIONS);
            int in_seg = -1;
            for (int i = 0; i < p.n_instances; i++)
                if (f >= p.inst[i].start_frame && f < p.inst[i].end_frame) in_seg = i;
            if (in_seg < 0) {
                cr_assert_eq(n, 0, "video %d frame %d: object outside any segment", v, f);
                continue;
            }
            tal_synth_class cls;
            tal_synth_class_info(&cls, p.inst[in_seg].label, o.n_classes);
            int blink = cls.motion == TAL_MOTION_BLINK_FAST || cls.motion == TAL_MOTION_BLINK_SLOW;
            if (!blink || f == p.inst[in_seg].start_frame) {
                /* Whole object visible: area at least that of the smallest drawn shape. */
                cr_assert_gt(n, 20, "video %d frame %d (%s): only %d pixels", v, f, cls.name, n);
                checked++;
            }
        }
    }
    cr_assert_gt(checked, 1000);
    free(rgb);
    free(tex);
}

/* Motion pairs really differ over time: the object's centroid moves the opposite way. */
Test(data_synth, left_and_right_move_opposite_ways) {
    tal_synth_opts o;
    tal_synth_opts_default(&o);
    uint8_t *rgb = malloc((size_t)3 * o.size * o.size);
    for (int label = 0; label < 2; label++) { /* class 0 moves left, class 1 right */
        tal_synth_plan p;
        memset(&p, 0, sizeof p);
        p.n_frames = 50;
        p.n_instances = 1;
        p.inst[0] = (tal_synth_instance){0, 50, label, 48, 48, 0, 10};
        double cx[2];
        for (int k = 0; k < 2; k++) {
            int f = k ? 49 : 0;
            tal_synth_render(rgb, NULL, &o, &p, f, TAL_SYNTH_ACTIONS);
            double sx = 0, n = 0;
            for (int i = 0; i < o.size * o.size; i++)
                if (rgb[3 * i] | rgb[3 * i + 1] | rgb[3 * i + 2]) sx += i % o.size, n++;
            cr_assert_gt(n, 0);
            cx[k] = sx / n;
        }
        double dx = cx[1] - cx[0];
        cr_assert(label == 0 ? dx < -30 : dx > 30, "class %d moved %.1f px", label, dx);
    }
    free(rgb);
}

Test(data_synth, same_seed_same_bytes_and_annotations_match_plans) {
    tal_synth_opts o = small_opts(7);
    char dir_a[512], dir_b[512], dir_c[512];
    snprintf(dir_a, sizeof dir_a, "%s", test_tmp_path("synth_a"));
    snprintf(dir_b, sizeof dir_b, "%s", test_tmp_path("synth_b"));
    snprintf(dir_c, sizeof dir_c, "%s", test_tmp_path("synth_c"));
    tal_err err = {0};
    cr_assert_eq(tal_synth_generate(&o, dir_a, NULL, NULL, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_synth_generate(&o, dir_b, NULL, NULL, &err), TAL_OK, "%s", err.msg);
    tal_synth_opts o2 = small_opts(8);
    cr_assert_eq(tal_synth_generate(&o2, dir_c, NULL, NULL, &err), TAL_OK, "%s", err.msg);
    const char *files[] = {"annotations.json", "classes.txt", "videos/synth_00000.mp4",
                           "videos/synth_00001.mp4", "videos/synth_00002.mp4"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char pa[600], pb[600], pc[600];
        snprintf(pa, sizeof pa, "%s/%s", dir_a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", dir_b, files[i]);
        snprintf(pc, sizeof pc, "%s/%s", dir_c, files[i]);
        size_t na, nb, nc;
        char *a = read_all(pa, &na), *b = read_all(pb, &nb), *c = read_all(pc, &nc);
        cr_assert_gt(na, 0);
        cr_assert(na == nb && !memcmp(a, b, na), "%s differs between two runs", files[i]);
        if (i != 1) cr_assert(na != nc || memcmp(a, c, na), "%s same for seeds 7, 8", files[i]);
        free(a), free(b), free(c);
    }
    /* The annotation file says what the plans say. */
    char path[600];
    snprintf(path, sizeof path, "%s/annotations.json", dir_a);
    size_t n;
    char *text = read_all(path, &n);
    cJSON *root = cJSON_Parse(text);
    cr_assert(root);
    cJSON *db = cJSON_GetObjectItemCaseSensitive(root, "database");
    cr_assert_eq(cJSON_GetArraySize(db), o.n_videos);
    for (int v = 0; v < o.n_videos; v++) {
        tal_synth_plan p;
        tal_synth_plan_video(&p, &o, v);
        cJSON *e = cJSON_GetObjectItemCaseSensitive(db, p.id);
        cr_assert(e, "%s missing", p.id);
        cr_assert_str_eq(cJSON_GetObjectItem(e, "subset")->valuestring,
                         v == 2 ? "validation" : "training");
        expect_close(tal_t1((float[]){(float)cJSON_GetObjectItem(e, "duration")->valuedouble}, 1),
                     tal_t1((float[]){(float)(p.n_frames / o.fps)}, 1), 1e-6, 0);
        cJSON *annos = cJSON_GetObjectItem(e, "annotations");
        cr_assert_eq(cJSON_GetArraySize(annos), p.n_instances);
        for (int i = 0; i < p.n_instances; i++) {
            cJSON *a = cJSON_GetArrayItem(annos, i), *seg = cJSON_GetObjectItem(a, "segment");
            double s = cJSON_GetArrayItem(seg, 0)->valuedouble;
            double e1 = cJSON_GetArrayItem(seg, 1)->valuedouble;
            cr_assert_float_eq(s, p.inst[i].start_frame / o.fps, 1e-6);
            cr_assert_float_eq(e1, p.inst[i].end_frame / o.fps, 1e-6);
            tal_synth_class cls;
            tal_synth_class_info(&cls, p.inst[i].label, o.n_classes);
            cr_assert_str_eq(cJSON_GetObjectItem(a, "label")->valuestring, cls.name);
        }
    }
    cJSON_Delete(root);
    free(text);
}

static void expect_bad(tal_synth_opts o, const char *word) {
    tal_err err = {0};
    cr_assert_eq(tal_synth_check_opts(&o, &err), TAL_EINVAL, "expected a complaint about %s", word);
    cr_assert(strstr(err.msg, word), "message must name %s: %s", word, err.msg);
    cr_assert_eq(tal_synth_generate(&o, test_tmp_path("synth_bad"), NULL, NULL, &err), TAL_EINVAL);
}

Test(data_synth, bad_options_are_named) {
    tal_synth_opts d;
    tal_synth_opts_default(&d);
    tal_err err = {0};
    cr_assert_eq(tal_synth_check_opts(&d, &err), TAL_OK, "%s", err.msg);
    tal_synth_opts o = d;
    o.n_classes = 1;
    expect_bad(o, "classes");
    o = d, o.n_classes = TAL_SYNTH_MAX_CLASSES + 1;
    expect_bad(o, "classes");
    o = d, o.n_videos = 0;
    expect_bad(o, "videos");
    o = d, o.size = 95;
    expect_bad(o, "size");
    o = d, o.fps = 0;
    expect_bad(o, "fps");
    o = d, o.min_len_s = 30, o.max_len_s = 20;
    expect_bad(o, "min-len");
    o = d, o.min_action_s = 0.01;
    expect_bad(o, "action");
    o = d, o.max_instances = 7;
    expect_bad(o, "instances");
    o = d, o.val_fraction = 0.9;
    expect_bad(o, "validation");
    o = d, o.codec = "no_such_encoder";
    o.n_videos = 1;
    cr_assert_eq(tal_synth_generate(&o, test_tmp_path("synth_bad"), NULL, NULL, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "no_such_encoder"), "%s", err.msg);
}

Test(data_synth, unwritable_output_is_an_io_error) {
    tal_synth_opts o = small_opts(1);
    tal_err err = {0};
    /* A regular file where the folder should go. */
    const char *file = test_tmp_path("synth_is_a_file");
    FILE *f = fopen(file, "w");
    fputs("x", f);
    fclose(f);
    cr_assert_eq(tal_synth_generate(&o, file, NULL, NULL, &err), TAL_EIO);
    cr_assert(strstr(err.msg, "synth_is_a_file"), "%s", err.msg);
}

/* Decodes the written file with libavcodec (independently of our writer) and compares every
 * frame's luma with the renderer: the file holds exactly the planned frames, in order, with the
 * action object where the annotation says. */
static void check_decodes(const char *codec);

Test(data_synth, encoded_video_decodes_to_the_rendered_frames) {
    check_decodes(NULL); /* libx264 where present */
}

Test(data_synth, mpeg4_fallback_decodes_to_the_rendered_frames) {
    check_decodes("mpeg4");
}

static void check_decodes(const char *codec) {
    tal_synth_opts o = small_opts(3);
    o.n_videos = 1;
    o.codec = codec;
    tal_synth_plan p;
    tal_synth_plan_video(&p, &o, 0);
    char path[600];
    snprintf(path, sizeof path, "%s", test_tmp_path(codec ? "synth_decode_mpeg4.mp4"
                                                          : "synth_decode.mp4"));
    tal_err err = {0};
    cr_assert_eq(tal_synth_write_video(path, &o, &p, &err), TAL_OK, "%s", err.msg);
    /* Same bytes on a second write, with either encoder. */
    char again[620];
    snprintf(again, sizeof again, "%s.again.mp4", path);
    cr_assert_eq(tal_synth_write_video(again, &o, &p, &err), TAL_OK, "%s", err.msg);
    size_t n1, n2;
    char *b1 = read_all(path, &n1), *b2 = read_all(again, &n2);
    cr_assert(n1 == n2 && !memcmp(b1, b2, n1), "%s: two writes differ", codec ? codec : "default");
    free(b1);
    free(b2);

    AVFormatContext *fc = NULL;
    cr_assert_geq(avformat_open_input(&fc, path, NULL, NULL), 0);
    cr_assert_geq(avformat_find_stream_info(fc, NULL), 0);
    int si = av_find_best_stream(fc, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    cr_assert_geq(si, 0);
    AVStream *st = fc->streams[si];
    const AVCodec *dec = avcodec_find_decoder(st->codecpar->codec_id);
    AVCodecContext *c = avcodec_alloc_context3(dec);
    avcodec_parameters_to_context(c, st->codecpar);
    cr_assert_geq(avcodec_open2(c, dec, NULL), 0);
    cr_assert_eq(c->width, o.size);
    double dur = fc->duration / (double)AV_TIME_BASE;
    cr_assert_float_eq(dur, p.n_frames / o.fps, 0.05, "container duration %g", dur);

    int S = o.size, n = 0;
    uint8_t *rgb = malloc((size_t)3 * S * S), *tex = malloc(TAL_SYNTH_TEXTURE * TAL_SYNTH_TEXTURE);
    tal_synth_texture(tex, &p);
    double worst = 0;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    int flushing = 0;
    for (;;) {
        if (!flushing) {
            int r = av_read_frame(fc, pkt);
            if (r < 0) {
                flushing = 1;
                avcodec_send_packet(c, NULL);
            } else {
                if (pkt->stream_index == si) avcodec_send_packet(c, pkt);
                av_packet_unref(pkt);
            }
        }
        int got = 0;
        while (avcodec_receive_frame(c, fr) == 0) {
            got = 1;
            cr_assert_lt(n, p.n_frames, "more frames than planned");
            tal_synth_render(rgb, tex, &o, &p, n, TAL_SYNTH_ALL);
            double err_sum = 0;
            for (int y = 0; y < S; y++) {
                for (int x = 0; x < S; x++) {
                    const uint8_t *q = rgb + 3 * (y * S + x);
                    int want = ((66 * q[0] + 129 * q[1] + 25 * q[2] + 128) >> 8) + 16;
                    err_sum += abs(want - fr->data[0][y * fr->linesize[0] + x]);
                }
            }
            double mae = err_sum / (S * S);
            if (mae > worst) worst = mae;
            n++;
        }
        if (flushing && !got) break;
    }
    cr_assert_eq(n, p.n_frames, "decoded %d frames, planned %d", n, p.n_frames);
    cr_assert_lt(worst, 6.0, "decoded luma differs from the render by %.2f on average", worst);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&c);
    avformat_close_input(&fc);
    free(rgb);
    free(tex);
}

/* A pair is motion-only: every frame of one class's instance is a frame of its partner's
 * instance played backwards (left from x = a to b is right from b to a reversed), so no single
 * frame tells the two apart and a model must use time. Blinking pairs share their on-frames. */
Test(data_synth, pairs_are_time_reversals_frame_by_frame) {
    tal_synth_opts o;
    tal_synth_opts_default(&o);
    o.n_classes = 12; /* pairs 0..5: left/right, up/down, grow/shrink, rotate, blink, diagonal */
    int S = o.size, len = 40;
    size_t bytes = (size_t)3 * S * S;
    uint8_t *a = malloc(bytes), *b = malloc(bytes);
    float travel = 0.42f * S, d = 0.7f * travel;
    for (int pair = 0; pair < 6; pair++) {
        if (pair == 3 || pair == 4) continue; /* rotation and blinking are checked below */
        tal_synth_plan pa, pb;
        memset(&pa, 0, sizeof pa);
        memset(&pb, 0, sizeof pb);
        pa.n_frames = pb.n_frames = len;
        pa.n_instances = pb.n_instances = 1;
        float x = 48, y = 48;
        pa.inst[0] = (tal_synth_instance){0, len, 2 * pair, x, y, 0.3f, 10};
        float xb = x, yb = y;
        if (pair == 0) xb = x - travel;          /* left ends where right starts */
        if (pair == 1) yb = y - travel;          /* up ends where down starts */
        if (pair == 5) xb = x + d, yb = y - d;   /* diag up ends where diag down starts */
        pb.inst[0] = (tal_synth_instance){0, len, 2 * pair + 1, xb, yb, 0.3f, 10};
        for (int t = 0; t < len; t++) {
            tal_synth_render(a, NULL, &o, &pa, t, TAL_SYNTH_ACTIONS);
            tal_synth_render(b, NULL, &o, &pb, len - 1 - t, TAL_SYNTH_ACTIONS);
            int diff = 0;
            for (size_t i = 0; i < bytes; i++) diff += a[i] != b[i];
            /* Float rounding may move a boundary pixel or two. */
            cr_assert_leq(diff, 12, "pair %d frame %d: %d bytes differ", pair, t, diff);
        }
    }
    /* Rotation: cw from angle a0 reversed is ccw from a0 + omega (len - 1). */
    {
        float omega = (float)(2 * M_PI / (2.0 * o.fps));
        tal_synth_plan pa, pb;
        memset(&pa, 0, sizeof pa);
        memset(&pb, 0, sizeof pb);
        pa.n_frames = pb.n_frames = len;
        pa.n_instances = pb.n_instances = 1;
        pa.inst[0] = (tal_synth_instance){0, len, 6, 48, 48, 0.3f, 10};
        pb.inst[0] = (tal_synth_instance){0, len, 7, 48, 48, 0.3f + omega * (len - 1), 10};
        for (int t = 0; t < len; t++) {
            tal_synth_render(a, NULL, &o, &pa, t, TAL_SYNTH_ACTIONS);
            tal_synth_render(b, NULL, &o, &pb, len - 1 - t, TAL_SYNTH_ACTIONS);
            int diff = 0;
            for (size_t i = 0; i < bytes; i++) diff += a[i] != b[i];
            cr_assert_leq(diff, 12, "rotation frame %d: %d bytes differ", t, diff);
        }
    }
    /* Blinking: the on-frames of fast and slow look the same; only their rhythm differs. */
    {
        tal_synth_plan pa, pb;
        memset(&pa, 0, sizeof pa);
        memset(&pb, 0, sizeof pb);
        pa.n_frames = pb.n_frames = len;
        pa.n_instances = pb.n_instances = 1;
        pa.inst[0] = (tal_synth_instance){0, len, 8, 48, 48, 0.3f, 10};
        pb.inst[0] = (tal_synth_instance){0, len, 9, 48, 48, 0.3f, 10};
        int on_a = 0, on_b = 0;
        for (int t = 0; t < len; t++) {
            int na = tal_synth_render(a, NULL, &o, &pa, t, TAL_SYNTH_ACTIONS);
            int nb = tal_synth_render(b, NULL, &o, &pb, t, TAL_SYNTH_ACTIONS);
            on_a += na > 0, on_b += nb > 0;
            if (na && nb) cr_assert(!memcmp(a, b, bytes), "on-frames differ at %d", t);
        }
        cr_assert(on_a > 0 && on_b > 0 && on_a < len && on_b < len);
    }
    free(a);
    free(b);
}

/* Through decode/ (what training reads): the frame at each annotated time shows the action
 * object inside its segments (decoded pixels nearer the render with the object than without),
 * so annotation times, rendering and the decoded stream agree frame by frame. */
Test(data_synth, decoder_sees_objects_at_annotated_times) {
    tal_synth_opts o = small_opts(11);
    o.max_len_s = 8, o.min_len_s = 7, o.max_action_s = 2;
    tal_synth_plan p;
    int v = 0;
    do tal_synth_plan_video(&p, &o, v++);
    while (p.n_instances < 2 && v < 50);
    cr_assert_geq(p.n_instances, 2);
    char path[600];
    snprintf(path, sizeof path, "%s", test_tmp_path("synth_decoder.mp4"));
    tal_err err = {0};
    cr_assert_eq(tal_synth_write_video(path, &o, &p, &err), TAL_OK, "%s", err.msg);
    tal_decoder *dec = NULL;
    cr_assert_eq(tal_decoder_open(&dec, path, NULL, &err), TAL_OK, "%s", err.msg);
    const tal_video_info *info = tal_decoder_info(dec);
    cr_assert_float_eq(info->duration_s, p.n_frames / o.fps, 1e-3, "%g", info->duration_s);
    int S = o.size, T = p.n_frames;
    double *times = malloc((size_t)T * sizeof *times);
    for (int f = 0; f < T; f++) times[f] = (f + 0.5) / o.fps;
    float *frames = malloc((size_t)T * S * S * 3 * sizeof *frames);
    tal_frame_transform tf = {.out_w = S, .out_h = S, .mean = {0, 0, 0}, .std = {1, 1, 1},
                              .channels_last = 1};
    cr_assert_eq(tal_decoder_read_times(dec, times, T, &tf, tal_t4(frames, T, S, S, 3), &err),
                 TAL_OK, "%s", err.msg);
    uint8_t *with = malloc((size_t)3 * S * S), *without = malloc((size_t)3 * S * S);
    uint8_t *tex = malloc(TAL_SYNTH_TEXTURE * TAL_SYNTH_TEXTURE);
    tal_synth_texture(tex, &p);
    int n_checked = 0;
    for (int f = 0; f < T; f++) {
        tal_synth_render(with, tex, &o, &p, f, TAL_SYNTH_ALL);
        tal_synth_render(without, tex, &o, &p, f, TAL_SYNTH_BACKGROUND | TAL_SYNTH_DISTRACTORS);
        double d_with = 0, d_without = 0;
        int n = 0;
        for (int i = 0; i < 3 * S * S; i++) {
            if (with[i] == without[i]) continue;
            float got = frames[(size_t)f * 3 * S * S + i];
            d_with += fabs(got - with[i]);
            d_without += fabs(got - without[i]);
            n++;
        }
        if (n < 30) continue; /* no object (or a blink-off frame) */
        /* Tiny objects (start of a grow) lose their colour to 4:2:0 chroma: skip those. */
        if (n < 60) continue;
        cr_assert_lt(d_with, 0.75 * d_without,
                     "frame %d: decoded pixels are not the object's (%.1f vs %.1f per value)", f,
                     d_with / n, d_without / n);
        n_checked++;
    }
    cr_assert_gt(n_checked, 20);
    /* At each segment boundary the frame just outside shows no object where the frame just
     * inside does: no off-by-one between annotation and stream. */
    int n_bounds = 0;
    for (int i = 0; i < p.n_instances; i++) {
        int pairs[2][2] = {{p.inst[i].start_frame, p.inst[i].start_frame - 1},
                           {p.inst[i].end_frame - 1, p.inst[i].end_frame}};
        for (int k = 0; k < 2; k++) {
            int f_in = pairs[k][0], f_out = pairs[k][1];
            if (f_out < 0 || f_out >= T) continue;
            tal_synth_render(with, tex, &o, &p, f_in, TAL_SYNTH_ALL);
            tal_synth_render(without, tex, &o, &p, f_in,
                             TAL_SYNTH_BACKGROUND | TAL_SYNTH_DISTRACTORS);
            double in_obj = 0, out_obj = 0;
            int n = 0;
            for (int j = 0; j < 3 * S * S; j++) {
                if (with[j] == without[j]) continue;
                in_obj += fabs(frames[(size_t)f_in * 3 * S * S + j] - with[j]);
                out_obj += fabs(frames[(size_t)f_out * 3 * S * S + j] - with[j]);
                n++;
            }
            if (n < 60) continue;
            cr_assert_lt(in_obj, 0.5 * out_obj, "instance %d boundary %d: frame %d vs %d", i, k,
                         f_in, f_out);
            n_bounds++;
        }
    }
    cr_assert_gt(n_bounds, 0);
    tal_decoder_close(dec);
    free(times), free(frames), free(with), free(without), free(tex);
}
