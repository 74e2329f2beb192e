/* The ActionFormer head on the GPU against the same head on the CPU, on the PyTorch fixtures of
 * test_heads_model.c (global attention + position table + label smoothing; local window 9):
 * the outputs per level, the backward from the fixture's seeds (input and every parameter
 * gradient), the losses with their seeds and backward, the bytes the loss moves across the bus,
 * and decoding. Skipped without a GPU. */
#include "cuda_check.h"

#include "heads_check.h"

TestSuite(cuda_head, .fini = cuda_test_cleanup);

typedef struct model {
    tal_params *params;
    tal_head *head;
} model;

/* The fixture's head on the CPU, then moved to dev (tal_params_move + tal_head_prepare). */
static void model_make(model *m, const tal_head_config *cfg, const fixture *fx, tal_device dev) {
    tal_err err = {0};
    m->params = tal_params_create();
    int gd = tal_params_add_group(m->params, "decay", 1.0f, 0.05f);
    int gn = tal_params_add_group(m->params, "no_decay", 1.0f, 0.0f);
    cr_assert_eq(tal_head_create(&m->head, cfg, m->params, "", gd, gn, 2, &err), TAL_OK, "%s",
                 err.msg);
    cr_assert_eq(tal_params_allocate(m->params, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_head_init(m->head, 0, &err), TAL_OK, "%s", err.msg);
    char name[200];
    for (int i = 0; i < tal_params_count(m->params); i++) {
        tal_param *p = tal_params_at(m->params, i);
        snprintf(name, sizeof name, "param.%s", p->name);
        tal_copy(p->value, fixture_get(fx, name));
    }
    if (dev == TAL_DEV_CPU) return;
    cr_assert_eq(tal_params_move(m->params, dev, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_head_prepare(m->head, &err), TAL_OK, "%s", err.msg);
}

static void model_free(model *m) {
    tal_head_destroy(m->head);
    tal_params_destroy(m->params);
}

/* Every parameter gradient of the device head against the CPU head's. */
static void expect_grads_close(model *dev, model *cpu, double atol, double rtol) {
    for (int i = 0; i < tal_params_count(cpu->params); i++) {
        tal_param *p = tal_params_at(cpu->params, i), *q = tal_params_at(dev->params, i);
        expect_close_impl(p->name, host_copy(q->grad), p->grad, atol, rtol, __FILE__, __LINE__);
    }
}

static void check_fixture(const char *name, int win, int pe, float smoothing) {
    CUDA_ONLY();
    fixture fx;
    fixture_load(&fx, name);
    tal_head_config cfg;
    small_config(&cfg, win, pe, smoothing);
    model mc, md;
    model_make(&mc, &cfg, &fx, TAL_DEV_CPU);
    model_make(&md, &cfg, &fx, TAL_DEV_CUDA);
    tal_tensor x = fixture_get(&fx, "x"), mask = fixture_get(&fx, "mask");
    tal_tensor gx = dev_copy(x), gmask = dev_copy(mask);
    /* forward, eval mode */
    tal_head_set_train(mc.head, 0, 0);
    tal_head_set_train(md.head, 0, 0);
    tal_head_forward(mc.head, x, mask);
    tal_head_forward(md.head, gx, gmask);
    for (int l = 0; l < 3; l++) {
        cr_log_info("level %d", l);
        expect_dev_close(tal_head_cls(md.head, l), tal_head_cls(mc.head, l), 1e-5, 1e-5);
        expect_dev_close(tal_head_reg(md.head, l), tal_head_reg(mc.head, l), 1e-5, 1e-5);
    }
    /* backward from the fixture's seeds */
    char n[64];
    tal_tensor d_cls[3], d_reg[3], gd_cls[3], gd_reg[3];
    for (int l = 0; l < 3; l++) {
        snprintf(n, sizeof n, "d_cls.%d", l);
        d_cls[l] = fixture_get(&fx, n);
        gd_cls[l] = dev_copy(d_cls[l]);
        snprintf(n, sizeof n, "d_reg.%d", l);
        d_reg[l] = fixture_get(&fx, n);
        gd_reg[l] = dev_copy(d_reg[l]);
    }
    tal_params_zero_grad(mc.params);
    tal_params_zero_grad(md.params);
    tal_tensor dx = test_tensor_like(x), gdx = dev_like(x);
    tal_head_backward_from(mc.head, d_cls, d_reg, dx);
    tal_head_backward_from(md.head, gd_cls, gd_reg, gdx);
    expect_dev_close(gdx, dx, 1e-5, 1e-4);
    expect_grads_close(&md, &mc, 1e-5, 1e-4);
    /* the losses: targets from the host, sums and seeds on the device */
    tal_head_gt gt[2];
    int labels[2][8];
    for (int b = 0; b < 2; b++) gt_of(&fx, b, &gt[b], labels[b]);
    tal_head_forward(mc.head, x, mask);
    tal_head_forward(md.head, gx, gmask);
    tal_head_losses lc, ld;
    tal_err err = {0};
    tal_params_zero_grad(mc.params);
    tal_params_zero_grad(md.params);
    cr_assert_eq(tal_head_loss(mc.head, gt, 1, &lc, &err), TAL_OK, "%s", err.msg);
    dev_sync();
    uint64_t up0, down0, up1, down1;
    tal_cuda_bus_bytes(&up0, &down0);
    cr_assert_eq(tal_head_loss(md.head, gt, 1, &ld, &err), TAL_OK, "%s", err.msg);
    tal_cuda_bus_bytes(&up1, &down1);
    size_t want_up, want_down, decode_down;
    tal_head_bus_bytes(md.head, 2, &want_up, &want_down, &decode_down);
    cr_expect_eq(up1 - up0, want_up, "loss uploads %llu bytes, tal_head_bus_bytes says %zu",
                 (unsigned long long)(up1 - up0), want_up);
    cr_expect_eq(down1 - down0, want_down, "loss downloads %llu bytes, tal_head_bus_bytes says "
                 "%zu", (unsigned long long)(down1 - down0), want_down);
    cr_expect_eq(ld.num_pos, lc.num_pos);
    cr_expect_eq(ld.normalizer, lc.normalizer);
    cr_expect(fabsf(ld.cls - lc.cls) <= 1e-6f * fabsf(lc.cls) + 1e-7f, "cls %.9g vs cpu %.9g",
              ld.cls, lc.cls);
    cr_expect(fabsf(ld.reg - lc.reg) <= 1e-6f * fabsf(lc.reg) + 1e-7f, "reg %.9g vs cpu %.9g",
              ld.reg, lc.reg);
    for (int l = 0; l < 3; l++) {
        cr_log_info("loss seeds, level %d", l);
        expect_dev_close(tal_head_seed_cls(md.head, l), tal_head_seed_cls(mc.head, l), 1e-6, 1e-5);
        expect_dev_close(tal_head_seed_reg(md.head, l), tal_head_seed_reg(mc.head, l), 1e-6, 1e-5);
    }
    tal_head_backward(mc.head, dx);
    tal_head_backward(md.head, gdx);
    expect_dev_close(gdx, dx, 1e-5, 1e-4);
    expect_grads_close(&md, &mc, 1e-5, 1e-4);
    /* decoding: the same detections, scores to 1e-4 */
    for (int b = 0; b < 2; b++) {
        tal_dets dc = {0}, dd = {0};
        cr_assert_eq(tal_head_decode(mc.head, b, &dc, &err), TAL_OK, "%s", err.msg);
        cr_assert_eq(tal_head_decode(md.head, b, &dd, &err), TAL_OK, "%s", err.msg);
        cr_assert_eq(dd.n, dc.n, "item %d: %d detections vs %d on the cpu", b, dd.n, dc.n);
        for (int i = 0; i < dc.n; i++) {
            tal_detection p = dd.items[i], q = dc.items[i];
            cr_expect(p.label == q.label && fabsf(p.score - q.score) <= 1e-4f &&
                          fabs(p.start - q.start) <= 1e-3 && fabs(p.end - q.end) <= 1e-3,
                      "item %d detection %d: [%g, %g] %d %g vs cpu [%g, %g] %d %g", b, i,
                      p.start, p.end, p.label, p.score, q.start, q.end, q.label, q.score);
        }
        tal_dets_free(&dc);
        tal_dets_free(&dd);
    }
    model_free(&mc);
    model_free(&md);
    fixture_free(&fx);
}

Test(cuda_head, global_attention_pe_matches_cpu) { check_fixture("heads_global", -1, 1, 0.1f); }
Test(cuda_head, local_attention_matches_cpu) { check_fixture("heads_local", 9, 0, 0.0f); }
