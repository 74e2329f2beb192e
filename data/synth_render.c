/* data/synth_render.c: the synthetic action dataset's content: the class table (look + motion,
 * in motion-only pairs), the per-video plan drawn from (seed, video index), and the software
 * renderer of one RGB frame [size, size, 3]. Encoding and files are in synth_write.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data/data.h"

/* Streams of the counter-based RNG, so that adding draws to one part never shifts another. */
enum { STREAM_VIDEO = 1, STREAM_INSTANCES = 2, STREAM_DISTRACTORS = 3, STREAM_TEXTURE = 4 };

void tal_synth_opts_default(tal_synth_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_videos = 200;
    o->n_classes = 8;
    o->seed = 0;
    o->size = 96;
    o->fps = 25.0;
    o->min_len_s = 20.0;
    o->max_len_s = 90.0;
    o->min_action_s = 0.5;
    o->max_action_s = 20.0;
    o->max_instances = TAL_SYNTH_MAX_INSTANCES;
    o->val_fraction = 0.2;
    o->codec = NULL;
}

tal_status tal_synth_check_opts(const tal_synth_opts *o, tal_err *err) {
    if (o->n_videos < 1 || o->n_videos > 1000000)
        return tal_err_set(err, TAL_EINVAL, "synth: videos must be 1 .. 1000000, got %d",
                           o->n_videos);
    if (o->n_classes < 2 || o->n_classes > TAL_SYNTH_MAX_CLASSES)
        return tal_err_set(err, TAL_EINVAL, "synth: classes must be 2 .. %d, got %d",
                           TAL_SYNTH_MAX_CLASSES, o->n_classes);
    if (o->size < 32 || o->size > 512 || o->size % 2)
        return tal_err_set(err, TAL_EINVAL, "synth: size must be even and 32 .. 512, got %d",
                           o->size);
    if (!(o->fps >= 1 && o->fps <= 240))
        return tal_err_set(err, TAL_EINVAL, "synth: fps must be 1 .. 240, got %g", o->fps);
    if (!(o->min_len_s >= 1 && o->max_len_s >= o->min_len_s && o->max_len_s <= 3600))
        return tal_err_set(err, TAL_EINVAL,
                           "synth: video length must satisfy 1 <= min-len (%g) <= max-len (%g) "
                           "<= 3600 s",
                           o->min_len_s, o->max_len_s);
    if (!(o->min_action_s * o->fps >= 2 && o->max_action_s >= o->min_action_s))
        return tal_err_set(err, TAL_EINVAL,
                           "synth: action length must satisfy 2 frames <= min (%g s) <= max (%g s)",
                           o->min_action_s, o->max_action_s);
    if (o->max_instances < 0 || o->max_instances > TAL_SYNTH_MAX_INSTANCES)
        return tal_err_set(err, TAL_EINVAL, "synth: max instances must be 0 .. %d, got %d",
                           TAL_SYNTH_MAX_INSTANCES, o->max_instances);
    if (!(o->val_fraction >= 0 && o->val_fraction <= 0.5))
        return tal_err_set(err, TAL_EINVAL, "synth: validation fraction must be 0 .. 0.5, got %g",
                           o->val_fraction);
    return TAL_OK;
}

/* ---------------------------------------------------------------- classes --------------- */
static const struct {
    const char *name;
    uint8_t rgb[3];
} k_colours[8] = {
    {"red", {230, 40, 40}},     {"green", {40, 210, 60}},  {"blue", {50, 80, 240}},
    {"yellow", {240, 230, 40}}, {"magenta", {230, 50, 220}}, {"cyan", {40, 220, 230}},
    {"orange", {250, 140, 20}}, {"white", {250, 250, 250}},
};
static const char *const k_shape_names[TAL_SHAPE_COUNT] = {
    "square", "triangle", "cross", "ring", "diamond", "tee", "disc", "bar", "arrow"};
/* Action shapes (the disc is left to the distractors). */
static const tal_shape k_action_shapes[7] = {TAL_SHAPE_SQUARE, TAL_SHAPE_TRIANGLE,
                                             TAL_SHAPE_CROSS,  TAL_SHAPE_RING,
                                             TAL_SHAPE_DIAMOND, TAL_SHAPE_TEE, TAL_SHAPE_BAR};
static const char *const k_motion_names[] = {
    "move_left",  "move_right", "move_up",    "move_down",  "grow",      "shrink", "rotate_cw",
    "rotate_ccw", "blink_fast", "blink_slow", "diag_up",    "diag_down", "still"};

void tal_synth_class_info(tal_synth_class *out, int k, int n_classes) {
    TAL_ASSERT(k >= 0 && k < n_classes);
    memset(out, 0, sizeof *out);
    int pair = k / 2;
    int family = pair % 6;
    int unpaired = (n_classes % 2 == 1) && k == n_classes - 1;
    out->motion = unpaired ? TAL_MOTION_STILL : (tal_motion)(2 * family + k % 2);
    out->partner = unpaired ? -1 : (k ^ 1);
    /* Shape and colour change together from pair to pair (7 shapes x 8 colours never repeat
     * within 56 pairs), so every pair has its own look and only motion splits a pair. */
    tal_shape shape = k_action_shapes[pair % 7];
    if (shape == TAL_SHAPE_RING &&
        (out->motion == TAL_MOTION_ROTATE_CW || out->motion == TAL_MOTION_ROTATE_CCW))
        shape = TAL_SHAPE_ARROW; /* a ring's rotation cannot be seen; arrows are only used here */
    out->shape = shape;
    int c = pair % 8;
    memcpy(out->rgb, k_colours[c].rgb, 3);
    /* The index prefix makes the sorted label set follow the class order. */
    snprintf(out->name, sizeof out->name, "%02d_%s_%s_%s", k, k_colours[c].name,
             k_shape_names[shape], k_motion_names[out->motion]);
}

/* ---------------------------------------------------------------- plan ------------------ */
typedef struct draw {
    tal_rng_key key;
    uint64_t i;
} draw;
static double next(draw *d) { return tal_rng_uniform(d->key, d->i++); }
static double uniform(draw *d, double lo, double hi) { return lo + (hi - lo) * next(d); }

/* Travel of a moving object over its whole instance, as a fraction of the frame size. */
#define MOVE_FRAC 0.42
#define HALF_FRAC 0.11            /* half size of the action objects */

static void place_instance(tal_synth_instance *in, const tal_synth_opts *o, draw *d) {
    tal_synth_class cls;
    tal_synth_class_info(&cls, in->label, o->n_classes);
    double S = o->size, h = HALF_FRAC * S, margin = 0.18 * S + 2, travel = MOVE_FRAC * S;
    in->half_size = (float)h;
    in->angle0 = (float)uniform(d, 0, 2 * M_PI);
    double x = uniform(d, margin, S - margin), y = uniform(d, margin, S - margin);
    /* Start where the whole path stays inside the frame. */
    switch (cls.motion) {
    case TAL_MOTION_LEFT: x = uniform(d, margin + travel, S - margin); break;
    case TAL_MOTION_RIGHT: x = uniform(d, margin, S - margin - travel); break;
    case TAL_MOTION_UP: y = uniform(d, margin + travel, S - margin); break;
    case TAL_MOTION_DOWN: y = uniform(d, margin, S - margin - travel); break;
    case TAL_MOTION_DIAG_UP: /* right and up */
        x = uniform(d, margin, S - margin - 0.7 * travel);
        y = uniform(d, margin + 0.7 * travel, S - margin);
        break;
    case TAL_MOTION_DIAG_DOWN: /* left and down: DIAG_UP played backwards */
        x = uniform(d, margin + 0.7 * travel, S - margin);
        y = uniform(d, margin, S - margin - 0.7 * travel);
        break;
    default: break;
    }
    in->x0 = (float)x;
    in->y0 = (float)y;
}

void tal_synth_plan_video(tal_synth_plan *out, const tal_synth_opts *o, int index) {
    memset(out, 0, sizeof *out);
    out->index = index;
    snprintf(out->id, sizeof out->id, "synth_%05d", index);
    draw dv = {{o->seed, (uint64_t)index, STREAM_VIDEO}, 0};
    double len_s = uniform(&dv, o->min_len_s, o->max_len_s);
    out->n_frames = (int)lround(len_s * o->fps);
    if (out->n_frames < 2) out->n_frames = 2;
    out->subset = TAL_SUBSET_TRAINING;
    if (o->val_fraction > 0) {
        int every = (int)lround(1.0 / o->val_fraction);
        if (index % every == every - 1) out->subset = TAL_SUBSET_VALIDATION;
    }
    for (int c = 0; c < 3; c++) out->bg_rgb[c] = (uint8_t)uniform(&dv, 70, 150);
    double bg_angle = uniform(&dv, 0, 2 * M_PI), bg_speed = uniform(&dv, 0.1, 0.6);
    out->bg_vx = (float)(bg_speed * cos(bg_angle));
    out->bg_vy = (float)(bg_speed * sin(bg_angle));
    out->texture_seed = tal_rng_u64(dv.key, dv.i++);

    /* Instances: draw count and lengths, drop from the end until they fit in 90% of the video,
     * then spread the free frames over the gaps with random weights. */
    draw di = {{o->seed, (uint64_t)index, STREAM_INSTANCES}, 0};
    int n = (int)(next(&di) * (o->max_instances + 1));
    if (n > o->max_instances) n = o->max_instances;
    int len[TAL_SYNTH_MAX_INSTANCES], total = 0;
    for (int i = 0; i < n; i++) {
        len[i] = (int)lround(uniform(&di, o->min_action_s, o->max_action_s) * o->fps);
        if (len[i] < 2) len[i] = 2;
        total += len[i];
    }
    while (n > 0 && total > 0.9 * out->n_frames) total -= len[--n];
    double w[TAL_SYNTH_MAX_INSTANCES + 1], wsum = 0;
    for (int i = 0; i <= n; i++) wsum += (w[i] = uniform(&di, 0.2, 1.0));
    int free_frames = out->n_frames - total, pos = 0;
    for (int i = 0; i < n; i++) {
        pos += (int)floor(free_frames * w[i] / wsum);
        tal_synth_instance *in = &out->inst[i];
        in->start_frame = pos;
        in->end_frame = pos + len[i];
        pos = in->end_frame;
        in->label = (int)(next(&di) * o->n_classes);
        if (in->label >= o->n_classes) in->label = o->n_classes - 1;
        place_instance(in, o, &di);
    }
    out->n_instances = n;
    TAL_ASSERT(n == 0 || out->inst[n - 1].end_frame <= out->n_frames);

    /* Distractors: grey-ish discs and rings wandering for the whole video. */
    draw dd = {{o->seed, (uint64_t)index, STREAM_DISTRACTORS}, 0};
    out->n_distractors = 1 + (int)(next(&dd) * TAL_SYNTH_MAX_DISTRACTORS);
    if (out->n_distractors > TAL_SYNTH_MAX_DISTRACTORS)
        out->n_distractors = TAL_SYNTH_MAX_DISTRACTORS;
    for (int i = 0; i < out->n_distractors; i++) {
        tal_synth_distractor *ds = &out->distractor[i];
        ds->shape = next(&dd) < 0.5 ? TAL_SHAPE_DISC : TAL_SHAPE_RING;
        double grey = uniform(&dd, 40, 215);
        for (int c = 0; c < 3; c++) ds->rgb[c] = (uint8_t)(grey + uniform(&dd, -15, 15));
        ds->half_size = (float)(uniform(&dd, 0.03, 0.06) * o->size);
        ds->x0 = (float)uniform(&dd, 0, o->size);
        ds->y0 = (float)uniform(&dd, 0, o->size);
        double a = uniform(&dd, 0, 2 * M_PI), v = uniform(&dd, 0.1, 0.8) * o->size / 96.0;
        ds->vx = (float)(v * cos(a));
        ds->vy = (float)(v * sin(a));
    }
}

/* ---------------------------------------------------------------- rendering ------------- */
void tal_synth_texture(uint8_t *texture, const tal_synth_plan *plan) {
    /* Value noise: two octaves of bilinearly interpolated random grids (cells of 16 and 4
     * pixels) that wrap around, so the tile can scroll forever. */
    enum { T = TAL_SYNTH_TEXTURE };
    tal_rng_key key = {plan->texture_seed, 0, STREAM_TEXTURE};
    float coarse[8][8], fine[32][32];
    for (int i = 0; i < 64; i++) coarse[i / 8][i % 8] = tal_rng_uniform(key, (uint64_t)i);
    for (int i = 0; i < 1024; i++)
        fine[i / 32][i % 32] = tal_rng_uniform(key, (uint64_t)(64 + i));
    for (int y = 0; y < T; y++) {
        for (int x = 0; x < T; x++) {
            float v = 0;
            for (int oct = 0; oct < 2; oct++) {
                int cell = oct ? 4 : 16, n = T / cell;
                float fx = (float)x / cell, fy = (float)y / cell;
                int x0 = (int)fx, y0 = (int)fy;
                float ax = fx - x0, ay = fy - y0;
                int x1 = (x0 + 1) % n, y1 = (y0 + 1) % n;
#define G(yy, xx) (oct ? fine[yy][xx] : coarse[yy][xx])
                float top = G(y0, x0) * (1 - ax) + G(y0, x1) * ax;
                float bot = G(y1, x0) * (1 - ax) + G(y1, x1) * ax;
#undef G
                v += (oct ? 0.35f : 0.65f) * (top * (1 - ay) + bot * ay);
            }
            texture[y * T + x] = (uint8_t)(v * 255.0f);
        }
    }
}

static int inside_shape(tal_shape s, float u, float v) {
    float au = fabsf(u), av = fabsf(v);
    switch (s) {
    case TAL_SHAPE_SQUARE: return au <= 1 && av <= 1;
    case TAL_SHAPE_DISC: return u * u + v * v <= 1;
    case TAL_SHAPE_RING: {
        float r2 = u * u + v * v;
        return r2 <= 1 && r2 >= 0.3f;
    }
    case TAL_SHAPE_DIAMOND: return au + av <= 1.2f;
    case TAL_SHAPE_CROSS: return (au <= 0.35f && av <= 1) || (av <= 0.35f && au <= 1);
    case TAL_SHAPE_TEE: return (v >= -1 && v <= -0.4f && au <= 1) || (au <= 0.33f && av <= 1);
    case TAL_SHAPE_TRIANGLE: return v >= -1 && v <= 1 && au <= (v + 1) * 0.5f;
    case TAL_SHAPE_BAR: return au <= 1 && av <= 0.4f;
    case TAL_SHAPE_ARROW: /* shaft along +u, head at the right */
        return (u >= -1 && u <= 0.2f && av <= 0.25f) || (u >= 0.2f && u <= 1 && av <= (1 - u));
    default: return 0;
    }
}

/* Draws a shape centred at (cx, cy) with half size h rotated by angle; returns pixels set. */
static int draw_shape(uint8_t *rgb, int S, tal_shape shape, float cx, float cy, float h,
                      float angle, const uint8_t col[3]) {
    if (h <= 0.5f) h = 0.5f;
    float r = h * 1.5f + 1;
    int x0 = (int)floorf(cx - r), x1 = (int)ceilf(cx + r);
    int y0 = (int)floorf(cy - r), y1 = (int)ceilf(cy + r);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > S - 1) x1 = S - 1;
    if (y1 > S - 1) y1 = S - 1;
    float c = cosf(angle), s = sinf(angle), inv = 1.0f / h;
    int n = 0;
    for (int y = y0; y <= y1; y++) {
        for (int x = x0; x <= x1; x++) {
            float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
            float u = (c * dx + s * dy) * inv, v = (-s * dx + c * dy) * inv;
            if (!inside_shape(shape, u, v)) continue;
            memcpy(rgb + 3 * (y * S + x), col, 3);
            n++;
        }
    }
    return n;
}

/* A point bouncing between 0 and S: p0 + v t folded into [0, S]. */
static float bounce(float p0, float v, int t, int S) {
    float p = fmodf(p0 + v * t, 2.0f * S);
    if (p < 0) p += 2.0f * S;
    return p > S ? 2.0f * S - p : p;
}

static int draw_instance(uint8_t *rgb, const tal_synth_opts *o, const tal_synth_instance *in,
                         int frame) {
    tal_synth_class cls;
    tal_synth_class_info(&cls, in->label, o->n_classes);
    int len = in->end_frame - in->start_frame, t = frame - in->start_frame;
    float p = len > 1 ? (float)t / (len - 1) : 0; /* 0 at the first frame, 1 at the last */
    float S = (float)o->size, travel = (float)(MOVE_FRAC * S);
    float x = in->x0, y = in->y0, h = in->half_size, a = in->angle0;
    float omega = (float)(2 * M_PI / (2.0 * o->fps)); /* one turn per 2 s */
    switch (cls.motion) {
    case TAL_MOTION_LEFT: x -= p * travel; break;
    case TAL_MOTION_RIGHT: x += p * travel; break;
    case TAL_MOTION_UP: y -= p * travel; break;
    case TAL_MOTION_DOWN: y += p * travel; break;
    case TAL_MOTION_DIAG_UP: x += 0.7f * p * travel, y -= 0.7f * p * travel; break;
    case TAL_MOTION_DIAG_DOWN: x -= 0.7f * p * travel, y += 0.7f * p * travel; break;
    case TAL_MOTION_GROW: h = S * (0.05f + 0.13f * p); break;
    case TAL_MOTION_SHRINK: h = S * (0.18f - 0.13f * p); break;
    case TAL_MOTION_ROTATE_CW: a += omega * t; break; /* y points down: +angle turns clockwise */
    case TAL_MOTION_ROTATE_CCW: a -= omega * t; break;
    case TAL_MOTION_BLINK_FAST:
    case TAL_MOTION_BLINK_SLOW: {
        double half_period_s = cls.motion == TAL_MOTION_BLINK_FAST ? 0.12 : 0.6;
        int half = (int)lround(half_period_s * o->fps);
        if (half < 1) half = 1;
        if ((t / half) % 2) return 0; /* off phase; every instance starts on */
        break;
    }
    default: break;
    }
    if (cls.motion != TAL_MOTION_ROTATE_CW && cls.motion != TAL_MOTION_ROTATE_CCW)
        a = in->angle0; /* other classes keep their drawn orientation */
    return draw_shape(rgb, o->size, cls.shape, x, y, h, a, cls.rgb);
}

int tal_synth_render(uint8_t *rgb, const uint8_t *texture, const tal_synth_opts *o,
                     const tal_synth_plan *plan, int frame, int layers) {
    int S = o->size;
    if (layers & TAL_SYNTH_BACKGROUND) {
        enum { T = TAL_SYNTH_TEXTURE };
        int ox = (int)floorf(plan->bg_vx * frame), oy = (int)floorf(plan->bg_vy * frame);
        /* Texture pixels are 128/96 of a frame pixel at any size: the look scales with S. */
        int step = (T << 16) / 96;
        for (int y = 0; y < S; y++) {
            const uint8_t *row = texture + (((((y * step) >> 16) + oy) % T + T) % T) * T;
            uint8_t *dst = rgb + 3 * y * S;
            for (int x = 0; x < S; x++) {
                int tv = row[((((x * step) >> 16) + ox) % T + T) % T] - 128; /* -128 .. 127 */
                for (int c = 0; c < 3; c++) {
                    int v = plan->bg_rgb[c] + (tv * 3) / 8;
                    dst[3 * x + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        }
    } else {
        memset(rgb, 0, (size_t)3 * S * S);
    }
    if (layers & TAL_SYNTH_DISTRACTORS) {
        for (int i = 0; i < plan->n_distractors; i++) {
            const tal_synth_distractor *d = &plan->distractor[i];
            draw_shape(rgb, S, d->shape, bounce(d->x0, d->vx, frame, S),
                       bounce(d->y0, d->vy, frame, S), d->half_size, 0, d->rgb);
        }
    }
    int n_action = 0;
    if (layers & TAL_SYNTH_ACTIONS) {
        for (int i = 0; i < plan->n_instances; i++) {
            const tal_synth_instance *in = &plan->inst[i];
            if (frame >= in->start_frame && frame < in->end_frame)
                n_action += draw_instance(rgb, o, in, frame);
        }
    }
    return n_action;
}
