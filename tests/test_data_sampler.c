/* tests/test_data_sampler.c: the time map (both modes, round trips, clipping), THUMOS random
 * truncation, ActivityNet resize, test sliding windows and batch masks: frame indices, targets
 * in feature units that map back to the annotated seconds, determinism, and bad options. */
#include <math.h>
#include <string.h>

#include "data/data.h"
#include "testlib.h"

Test(data_time, sliding_window_mode) {
    tal_time_map m = {.fps = 30, .snippet_stride = 4, .window_start_frame = 1024,
                      .offset_frames = 0, .duration_s = 100, .resize_len = 0};
    cr_assert_float_eq(tal_time_feat_to_s(&m, 10), (40.0 + 1024) / 30, 1e-12);
    cr_assert_float_eq(tal_time_feat_to_s(&m, 0), 1024.0 / 30, 1e-12);
    for (double t = 35; t < 99; t += 3.7)
        cr_assert_float_eq(tal_time_feat_to_s(&m, tal_time_s_to_feat(&m, t)), t, 1e-9);
    /* Clipped to [0, duration]. */
    cr_assert_float_eq(tal_time_feat_to_s(&m, 1e6), 100, 0);
    cr_assert_float_eq(tal_time_feat_to_s(&m, -1e6), 0, 0);
    cr_assert_float_eq(tal_time_s_to_feat(&m, 500), tal_time_s_to_feat(&m, 100), 0);
    /* Original ActionFormer: half a 16-frame clip of offset. */
    m.window_start_frame = 0;
    m.offset_frames = 8;
    cr_assert_float_eq(tal_time_feat_to_s(&m, 5), (20.0 + 8) / 30, 1e-12);
    /* No duration: no upper clip. */
    m.duration_s = 0;
    cr_assert_float_eq(tal_time_feat_to_s(&m, 1e4), (4e4 + 8) / 30, 1e-9);
}

Test(data_time, resize_mode) {
    tal_time_map m = {.duration_s = 120, .resize_len = 192};
    cr_assert_float_eq(tal_time_feat_to_s(&m, 96), 60, 1e-12);
    cr_assert_float_eq(tal_time_feat_to_s(&m, 192), 120, 1e-12);
    cr_assert_float_eq(tal_time_feat_to_s(&m, 250), 120, 0);
    cr_assert_float_eq(tal_time_s_to_feat(&m, 30), 48, 1e-12);
    cr_assert_float_eq(tal_time_s_to_feat(&m, -5), 0, 0);
}

static const tal_segment k_segs[] = {
    {10.0, 14.0, 0}, {30.2, 31.0, 1}, {50.0, 80.0, 2}, {95.0, 99.5, 0}, {60.0, 60.0, 1}};

static tal_video_meta long_video(void) {
    return (tal_video_meta){3000, 100.0, k_segs, 5}; /* 30 fps, 1500 sampled frames */
}

Test(data_sampler, trunc_window_targets_map_back_to_seconds) {
    tal_trunc_opts o;
    tal_trunc_opts_default(&o);
    tal_video_meta v = long_video();
    int starts_seen[1500] = {0}, n_distinct = 0;
    for (uint64_t step = 0; step < 200; step++) {
        tal_clip c;
        tal_err err = {0};
        cr_assert_eq(tal_sample_trunc(&c, &v, &o, (tal_rng_key){5, step, 0}, &err), TAL_OK, "%s",
                     err.msg);
        cr_assert_eq(c.n_frames, 1024);
        cr_assert_eq(c.n_valid_frames, 1024);
        cr_assert_eq(c.n_feat, 512);
        cr_assert_eq(c.n_valid_feat, 512);
        for (int i = 1; i < c.n_frames; i++) cr_assert_eq(c.frame_idx[i] - c.frame_idx[i - 1], 2);
        cr_assert_lt(c.frame_idx[1023], 3000);
        cr_assert_float_eq(c.time.window_start_frame, (double)c.frame_idx[0], 0);
        int start = (int)(c.frame_idx[0] / 2);
        n_distinct += !starts_seen[start]++;
        cr_assert_gt(c.n_segments, 0, "a window keeping a GT exists, trial %d", (int)step);
        for (int s = 0; s < c.n_segments; s++) {
            const tal_segment *g = &c.segments[s];
            cr_assert(g->start_s >= 0 && g->end_s <= 512 && g->start_s <= g->end_s);
            /* Map back: find the source and check the kept part, in seconds. */
            double t0 = tal_time_feat_to_s(&c.time, g->start_s);
            double t1 = tal_time_feat_to_s(&c.time, g->end_s);
            int found = 0;
            for (int k = 0; k < 5 && !found; k++) {
                const tal_segment *src = &k_segs[k];
                if (src->label != g->label) continue;
                double w0 = tal_time_feat_to_s(&c.time, 0), w1 = tal_time_feat_to_s(&c.time, 512);
                double a = fmax(src->start_s, w0), b = fmin(src->end_s, w1);
                /* Frames are floored: within one original frame (1/30 s). */
                found = fabs(t0 - a) <= 1.0 / 30 + 1e-9 && fabs(t1 - b) <= 1.0 / 30 + 1e-9;
                if (found && src->end_s > src->start_s)
                    cr_assert_geq((b - a) / (src->end_s - src->start_s), 0.75 - 0.01,
                                  "kept a GT with less than trunc_thresh inside");
            }
            cr_assert(found, "segment [%g, %g] s matches no GT", t0, t1);
        }
        /* Same key, same window. */
        tal_clip c2;
        tal_sample_trunc(&c2, &v, &o, (tal_rng_key){5, step, 0}, &err);
        cr_assert_eq(c2.frame_idx[0], c.frame_idx[0]);
        cr_assert_eq(c2.n_segments, c.n_segments);
        tal_clip_free(&c2);
        tal_clip_free(&c);
    }
    cr_assert_gt(n_distinct, 50, "windows should vary with the key (%d distinct)", n_distinct);
}

Test(data_sampler, trunc_short_video_is_cropped_and_padded) {
    tal_trunc_opts o;
    tal_trunc_opts_default(&o);
    tal_segment seg = {5.0, 20.0, 3};
    tal_video_meta v = {1000, 40.0, &seg, 1}; /* 500 sampled frames < 1024 */
    int min_l = 1 << 30, max_l = 0;
    for (uint64_t step = 0; step < 100; step++) {
        tal_clip c;
        tal_err err = {0};
        cr_assert_eq(tal_sample_trunc(&c, &v, &o, (tal_rng_key){1, step, 2}, &err), TAL_OK);
        cr_assert_eq(c.n_frames, 1024);
        int L = c.n_valid_frames;
        cr_assert(L >= 450 && L <= 500, "crop length %d outside [0.9, 1] x 500", L);
        min_l = L < min_l ? L : min_l;
        max_l = L > max_l ? L : max_l;
        for (int i = L; i < c.n_frames; i++) cr_assert_eq(c.frame_idx[i], c.frame_idx[L - 1]);
        cr_assert_eq(c.n_valid_feat, (L + 1) / 2);
        cr_assert_eq(c.n_feat, 512);
        cr_assert_eq(c.n_segments, 1);
        cr_assert_eq(c.segments[0].label, 3);
        tal_clip_free(&c);
    }
    cr_assert(min_l < max_l, "crop lengths must vary");
}

Test(data_sampler, trunc_without_gt_and_bad_options) {
    tal_trunc_opts o;
    tal_trunc_opts_default(&o);
    tal_video_meta v = {3000, 100.0, NULL, 0};
    tal_clip c;
    tal_err err = {0};
    cr_assert_eq(tal_sample_trunc(&c, &v, &o, (tal_rng_key){1, 0, 0}, &err), TAL_OK);
    cr_assert_eq(c.n_segments, 0);
    tal_clip_free(&c);
    tal_trunc_opts bad = o;
    bad.trunc_len = 1023;
    cr_assert_eq(tal_sample_trunc(&c, &v, &bad, (tal_rng_key){0}, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "1023"), "%s", err.msg);
    bad = o, bad.snippet_stride = 3;
    cr_assert_eq(tal_sample_trunc(&c, &v, &bad, (tal_rng_key){0}, &err), TAL_EINVAL);
    bad = o, bad.trunc_thresh = 1.5;
    cr_assert_eq(tal_sample_trunc(&c, &v, &bad, (tal_rng_key){0}, &err), TAL_EINVAL);
    bad = o, bad.crop_ratio_min = 0;
    cr_assert_eq(tal_sample_trunc(&c, &v, &bad, (tal_rng_key){0}, &err), TAL_EINVAL);
    tal_video_meta empty = {0, 10.0, NULL, 0};
    cr_assert_eq(tal_sample_trunc(&c, &empty, &o, (tal_rng_key){0}, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "frames"), "%s", err.msg);
    tal_video_meta nodur = {100, 0, NULL, 0};
    cr_assert_eq(tal_sample_trunc(&c, &nodur, &o, (tal_rng_key){0}, &err), TAL_EINVAL);
    cr_assert_null(c.frame_idx, "nothing allocated on failure");
}

Test(data_sampler, resize_spreads_frames_and_scales_targets) {
    tal_resize_opts o;
    tal_resize_opts_default(&o);
    tal_segment segs[] = {{10, 40, 5}, {50, 50.5, 2}, {-3, 200, 1}};
    tal_video_meta v = {3600, 120.0, segs, 3};
    tal_clip c;
    tal_err err = {0};
    cr_assert_eq(tal_sample_resize(&c, &v, &o, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(c.n_frames, 768);
    cr_assert_eq(c.n_feat, 192);
    cr_assert_eq(c.n_valid_feat, 192);
    double stride = 3600.0 / 768;
    cr_assert_eq(c.frame_idx[0], llround(stride / 2 - 0.5));
    for (int k = 1; k < 768; k++) cr_assert_gt(c.frame_idx[k], c.frame_idx[k - 1]);
    cr_assert_leq(c.frame_idx[767], 3599);
    /* The 0.5 s segment is under 1 % of 120 s: dropped. The third is clipped to the video. */
    cr_assert_eq(c.n_segments, 2);
    cr_assert_float_eq(c.segments[0].start_s, 16, 1e-12);
    cr_assert_float_eq(c.segments[0].end_s, 64, 1e-12);
    cr_assert_eq(c.segments[0].label, 5);
    cr_assert_float_eq(c.segments[1].start_s, 0, 0);
    cr_assert_float_eq(c.segments[1].end_s, 192, 0);
    cr_assert_float_eq(tal_time_feat_to_s(&c.time, c.segments[0].end_s), 40, 1e-9);
    tal_clip_free(&c);

    o.class_agnostic = 1;
    tal_video_meta short_v = {100, 4.0, segs + 2, 1}; /* fewer frames than samples: repeats */
    cr_assert_eq(tal_sample_resize(&c, &short_v, &o, &err), TAL_OK);
    cr_assert_eq(c.n_segments, 1);
    cr_assert_eq(c.segments[0].label, 0);
    for (int k = 1; k < 768; k++) cr_assert_geq(c.frame_idx[k], c.frame_idx[k - 1]);
    cr_assert_leq(c.frame_idx[767], 99);
    tal_clip_free(&c);

    o.resize_len = 0;
    cr_assert_eq(tal_sample_resize(&c, &v, &o, &err), TAL_EINVAL);
}

Test(data_sampler, sliding_windows_cover_the_video) {
    tal_window_opts o;
    tal_window_opts_default(&o);
    tal_video_meta v = long_video();
    v.n_frames = 5000; /* 2500 sampled frames: starts 0, 512, 1024, 1476 */
    v.duration_s = 5000 / 30.0;
    cr_assert_eq(tal_window_count(v.n_frames, &o), 4);
    const int64_t want_start[4] = {0, 512, 1024, 1476};
    for (int w = 0; w < 4; w++) {
        tal_clip c;
        tal_err err = {0};
        cr_assert_eq(tal_sample_window(&c, &v, &o, w, &err), TAL_OK, "%s", err.msg);
        cr_assert_eq(c.frame_idx[0], 2 * want_start[w]);
        cr_assert_eq(c.n_valid_frames, 1024);
        cr_assert_eq(c.n_valid_feat, 512);
        cr_assert_float_eq(tal_time_feat_to_s(&c.time, 0), 2 * want_start[w] / 30.0, 1e-9);
        if (w == 3) cr_assert_eq(c.frame_idx[1023], 4998, "the last window ends at the end");
        tal_clip_free(&c);
    }
    tal_clip c;
    tal_err err = {0};
    cr_assert_eq(tal_sample_window(&c, &v, &o, 4, &err), TAL_EINVAL);
    cr_assert_eq(tal_sample_window(&c, &v, &o, -1, &err), TAL_EINVAL);

    /* A short video: one padded window, the mask covers the real part. GT kept whole. */
    tal_video_meta s = long_video();
    s.n_frames = 1501; /* 751 sampled frames */
    cr_assert_eq(tal_window_count(s.n_frames, &o), 1);
    cr_assert_eq(tal_sample_window(&c, &s, &o, 0, &err), TAL_OK);
    cr_assert_eq(c.n_valid_frames, 751);
    cr_assert_eq(c.n_valid_feat, 376);
    cr_assert_eq(c.n_feat, 512, "n_feat is the window's");
    cr_assert_eq(c.frame_idx[1023], 1500, "padding repeats the last frame");
    cr_assert_eq(c.n_segments, 5, "every GT lies inside the only window");
    tal_clip_free(&c);
}

Test(data_sampler, windows_exact_multiple_and_tiny_video) {
    tal_window_opts o;
    tal_window_opts_default(&o);
    cr_assert_eq(tal_window_count(2048, &o), 1);     /* 1024 sampled: exactly one window */
    cr_assert_eq(tal_window_count(2049, &o), 2);     /* 1025: one more, right-aligned */
    cr_assert_eq(tal_window_count(2 * 2048, &o), 3); /* 2048: 0, 512, 1024 */
    cr_assert_eq(tal_window_count(1, &o), 1);
    tal_window_opts bad = o;
    bad.window_stride = 0;
    tal_clip c;
    tal_err err = {0};
    tal_video_meta v = {100, 4, NULL, 0};
    cr_assert_eq(tal_sample_window(&c, &v, &bad, 0, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "stride"), "%s", err.msg);
}

Test(data_sampler, batch_masks_and_lengths) {
    tal_clip clips[3];
    memset(clips, 0, sizeof clips);
    clips[0].n_feat = 512, clips[0].n_valid_feat = 512;
    clips[1].n_feat = 512, clips[1].n_valid_feat = 200;
    clips[2].n_feat = 300, clips[2].n_valid_feat = 300;
    cr_assert_eq(tal_batch_len(clips, 3, 1), 512);
    cr_assert_eq(tal_batch_len(clips + 2, 1, 32), 320);
    float mask[3 * 520];
    tal_batch_mask(tal_t2(mask, 3, 520), clips, 3);
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < 520; t++)
            cr_assert_eq(mask[b * 520 + t], t < clips[b].n_valid_feat ? 1.0f : 0.0f);
}

Test(data_sampler, meta_from_annotations) {
    const char *json = "{\"database\": {\"a\": {\"duration\": 10, \"fps\": 30, "
                       "\"annotations\": [{\"segment\": [1, 2], \"label\": \"x\"}]},"
                       "\"b\": {\"duration\": 10, \"frames\": 299, \"annotations\": []},"
                       "\"c\": {\"duration\": 10, \"annotations\": []}}}";
    tal_dataset *ds = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_dataset_parse(&ds, "m.json", json, strlen(json), &err), TAL_OK, "%s", err.msg);
    tal_video_meta m = tal_video_meta_of(&ds->videos[0]);
    cr_assert_eq(m.n_frames, 300);
    cr_assert_eq(m.n_segments, 1);
    cr_assert_eq(m.segments, ds->videos[0].segments);
    cr_assert_eq(tal_video_meta_of(&ds->videos[1]).n_frames, 299);
    cr_assert_eq(tal_video_meta_of(&ds->videos[2]).n_frames, 0);
    tal_dataset_destroy(ds);
}
