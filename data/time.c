/* data/time.c: seconds <-> feature index, the one conversion used by training and inference
 * (spec-actionformer.md §8.3): sliding windows (THUMOS) and resize (ActivityNet). */
#include "data/data.h"

static double clip_seconds(const tal_time_map *m, double t) {
    if (m->duration_s > 0) {
        if (t > m->duration_s) t = m->duration_s;
    }
    return t < 0 ? 0 : t;
}

double tal_time_feat_to_s_unclipped(const tal_time_map *m, double feat_index) {
    if (m->resize_len > 0) return feat_index / m->resize_len * m->duration_s;
    TAL_ASSERT_MSG(m->fps > 0, "time map without fps (%g)", m->fps);
    return (feat_index * m->snippet_stride + m->window_start_frame + m->offset_frames) / m->fps;
}

double tal_time_feat_to_s(const tal_time_map *m, double feat_index) {
    return clip_seconds(m, tal_time_feat_to_s_unclipped(m, feat_index));
}

double tal_time_s_to_feat(const tal_time_map *m, double t_s) {
    double t = clip_seconds(m, t_s);
    if (m->resize_len > 0) {
        TAL_ASSERT_MSG(m->duration_s > 0, "resize time map without duration (%g)", m->duration_s);
        return t / m->duration_s * m->resize_len;
    }
    TAL_ASSERT_MSG(m->fps > 0 && m->snippet_stride > 0, "time map fps %g stride %g", m->fps,
                   m->snippet_stride);
    return (t * m->fps - m->window_start_frame - m->offset_frames) / m->snippet_stride;
}
