/* nn/losses.c: the detection head's losses (nn.h "ops: sequences"): sigmoid focal loss over the
 * valid columns of [B, K, T] logits and the 1-D DIoU loss of segments predicted as offsets, each
 * returning its sum and writing its gradient. The per-element math is device_math.h's, shared
 * with the CUDA twins (losses.cu) and, through tal_focal_loss_one / tal_diou_loss_one, with the
 * head's own loops. */
#include "nn.h"
#include "cuda_ops.h"
#include "device_math.h"
#include "dispatch.h"

double tal_focal_loss_one(float x, float t, float alpha, float gamma, float gscale, float *dx) {
    return focal_loss_term(x, t, alpha, gamma, gscale, dx);
}

double tal_diou_loss_one(float ps, float pe, float gs, float ge, float gscale, float *dps,
                         float *dpe) {
    return diou_loss_term(ps, pe, gs, ge, gscale, dps, dpe);
}

double tal_focal_loss_masked(tal_tensor dx, tal_tensor x, tal_tensor t, tal_tensor mask,
                             float alpha, float gamma, float gscale) {
    TAL_ASSERT(x.ndim == 3);
    TAL_ASSERT_SAME_SHAPE(t, x);
    TAL_ASSERT(!dx.data || tal_tensor_same_shape(dx, x));
    int64_t B = x.shape[0], K = x.shape[1], T = x.shape[2];
    TAL_ASSERT(!mask.data || tal_tensor_numel(mask) == B * T);
    tal_device dev = OP_DEVICE(dx, x, t, mask);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) return focal_loss_masked_cuda(dx, x, t, mask, alpha, gamma, gscale);
#endif
    ASSERT_CPU_PATH(dev);
    double sum = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < T; i++) {
            int valid = !mask.data || mask.data[b * T + i] > 0;
            for (int64_t k = 0; k < K; k++) {
                int64_t e = (b * K + k) * T + i;
                float d = 0.0f;
                if (valid) sum += focal_loss_term(x.data[e], t.data[e], alpha, gamma, gscale, &d);
                if (dx.data) dx.data[e] = d;
            }
        }
    return sum;
}

double tal_diou_loss_offsets(tal_tensor dr, tal_tensor r, tal_tensor rt, tal_tensor pos,
                             float stride, float gscale) {
    TAL_ASSERT(r.ndim == 3 && r.shape[1] == 2);
    TAL_ASSERT_SAME_SHAPE(rt, r);
    TAL_ASSERT(!dr.data || tal_tensor_same_shape(dr, r));
    int64_t B = r.shape[0], T = r.shape[2];
    TAL_ASSERT(tal_tensor_numel(pos) == B * T);
    tal_device dev = OP_DEVICE(dr, r, rt, pos);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) return diou_loss_offsets_cuda(dr, r, rt, pos, stride, gscale);
#endif
    ASSERT_CPU_PATH(dev);
    double sum = 0, s = stride;
    for (int64_t b = 0; b < B; b++) {
        const float *rb = r.data + b * 2 * T, *tb = rt.data + b * 2 * T;
        float *db = dr.data ? dr.data + b * 2 * T : NULL;
        for (int64_t i = 0; i < T; i++) {
            float d0 = 0.0f, d1 = 0.0f;
            if (pos.data[b * T + i] > 0) {
                float ps, pe, gs, ge;
                offsets_to_segment(i, s, rb[i], rb[T + i], &ps, &pe);
                offsets_to_segment(i, s, tb[i], tb[T + i], &gs, &ge);
                float dps, dpe;
                sum += diou_loss_term(ps, pe, gs, ge, gscale, &dps, &dpe);
                /* d start / d left = -s, d end / d right = +s */
                d0 = (float)(-dps * s);
                d1 = (float)(dpe * s);
            }
            if (db) {
                db[i] = d0;
                db[T + i] = d1;
            }
        }
    }
    return sum;
}
