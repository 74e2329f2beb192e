/* A CPU loop never runs over device memory: every op, given a tensor tagged as a CUDA tensor
 * (a fake: host memory with device = TAL_DEV_CUDA) among host tensors, aborts (mixed devices
 * are a bug; a CPU path checks each tensor it touches). One case per op and argument position,
 * so an op that forgets one of its tensors fails here by name. Runs on any machine. */
#include "testlib.h"

#include <criterion/parameterized.h>
#include <signal.h>

typedef struct shape {
    int ndim;
    int64_t d[5];
} shape;

#define MAX_ARGS 9

typedef struct op_case {
    const char *name;
    int n_args;
    shape shapes[MAX_ARGS];
    void (*call)(tal_tensor *t);
} op_case;

static tal_arena *g_scratch; /* one per test process, freed by the suite's .fini */

static tal_arena *cpu_scratch(void) {
    tal_err err = {0};
    if (!g_scratch)
        cr_assert_eq(tal_arena_create(&g_scratch, TAL_DEV_CPU, 1 << 20, &err), TAL_OK, "%s",
                     err.msg);
    return g_scratch;
}

static void cleanup(void) {
    tal_arena_destroy(g_scratch);
    g_scratch = NULL;
    test_free_all();
}
TestSuite(nn_device_guard, .fini = cleanup);

static const tal_rng_key KEY = {1, 2, 3};
static const tal_conv3d_geom G3 = {{1, 1, 1}, {1, 1, 1}};
static const tal_conv1d_geom G1 = {1, 1, 1};

static void call_add(tal_tensor *t) { tal_add(t[0], t[1], t[2]); }
static void call_sub(tal_tensor *t) { tal_sub(t[0], t[1], t[2]); }
static void call_mul(tal_tensor *t) { tal_mul(t[0], t[1], t[2]); }
static void call_scale(tal_tensor *t) { tal_scale(t[0], t[1], 2.0f); }
static void call_axpy(tal_tensor *t) { tal_axpy(t[0], 2.0f, t[1]); }
static void call_fill(tal_tensor *t) { tal_fill(t[0], 1.0f); }
static void call_bmm(tal_tensor *t) { tal_bmm(t[0], t[1], t[2], 0, 0, 1.0f, 0.0f); }
static void call_linear_fwd(tal_tensor *t) { tal_linear_forward(t[0], t[1], t[2], t[3]); }
static void call_linear_bwd(tal_tensor *t) {
    tal_linear_backward(t[0], t[1], t[2], t[3], t[4], t[5]);
}
static void call_ln_fwd(tal_tensor *t) {
    tal_layernorm_forward(t[0], t[1], t[2], t[3], t[4], t[5], 1e-5f);
}
static void call_ln_bwd(tal_tensor *t) {
    tal_layernorm_backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
}
static void call_ln_ct_fwd(tal_tensor *t) {
    tal_layernorm_ct_forward(t[0], t[1], t[2], t[3], t[4], t[5], 1e-5f);
}
static void call_ln_ct_bwd(tal_tensor *t) {
    tal_layernorm_ct_backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
}
static void call_gelu_fwd(tal_tensor *t) { tal_gelu_forward(t[0], t[1]); }
static void call_gelu_bwd(tal_tensor *t) { tal_gelu_backward(t[0], t[1], t[2]); }
static void call_relu_fwd(tal_tensor *t) { tal_relu_forward(t[0], t[1]); }
static void call_relu_bwd(tal_tensor *t) { tal_relu_backward(t[0], t[1], t[2]); }
static void call_softmax_fwd(tal_tensor *t) { tal_softmax_forward(t[0], t[1]); }
static void call_softmax_bwd(tal_tensor *t) { tal_softmax_backward(t[0], t[1], t[2]); }
static void call_dropout_fwd(tal_tensor *t) { tal_dropout_forward(t[0], t[1], 0.5f, KEY); }
static void call_dropout_bwd(tal_tensor *t) { tal_dropout_backward(t[0], t[1], 0.5f, KEY); }
static void call_drop_path_fwd(tal_tensor *t) { tal_drop_path_forward(t[0], t[1], 0.5f, KEY); }
static void call_drop_path_bwd(tal_tensor *t) { tal_drop_path_backward(t[0], t[1], 0.5f, KEY); }
static void call_attn_fwd(tal_tensor *t) {
    tal_attention_forward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], 0.5f);
}
static void call_attn_bwd(tal_tensor *t) {
    tal_attention_backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], 0.5f,
                           cpu_scratch());
}
static void call_attn_qkv_fwd(tal_tensor *t) {
    tal_attention_qkv_forward(t[0], t[1], 1, t[2], 1, t[3], t[4], NULL, 0.5f);
}
static void call_attn_qkv_bwd(tal_tensor *t) {
    tal_attention_qkv_backward(t[0], t[1], t[2], t[3], t[4], 1, 0.5f, cpu_scratch());
}
static void call_patch_fwd(tal_tensor *t) { tal_patch_conv3d_forward(t[0], t[1], t[2], t[3]); }
static void call_patch_bwd(tal_tensor *t) {
    tal_patch_conv3d_backward(t[0], t[1], t[2], t[3], t[4], t[5]);
}
static void call_conv3d_fwd(tal_tensor *t) {
    tal_conv3d_forward(t[0], t[1], t[2], t[3], G3, cpu_scratch());
}
static void call_conv3d_bwd(tal_tensor *t) {
    tal_conv3d_backward(t[0], t[1], t[2], t[3], t[4], t[5], G3, cpu_scratch());
}
static void call_conv1d_fwd(tal_tensor *t) {
    tal_conv1d_forward(t[0], t[1], t[2], t[3], t[4], G1, cpu_scratch());
}
static void call_conv1d_bwd(tal_tensor *t) {
    tal_conv1d_backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], G1, cpu_scratch());
}
static void call_maxpool_fwd(tal_tensor *t) { tal_maxpool1d_forward(t[0], t[1], t[2], 3, 2, 1); }
static void call_maxpool_bwd(tal_tensor *t) { tal_maxpool1d_backward(t[0], t[1], t[2]); }
static const tal_pool3d_geom P3 = {{3, 3, 3}, {2, 2, 2}, {1, 1, 1}};
static void call_maxpool3d_fwd(tal_tensor *t) { tal_maxpool3d_forward(t[0], t[1], P3); }
static void call_maxpool3d_bwd(tal_tensor *t) { tal_maxpool3d_backward(t[0], t[1], t[2], P3); }
static void call_mean_fwd(tal_tensor *t) { tal_mean_hw_forward(t[0], t[1]); }
static void call_mean_bwd(tal_tensor *t) { tal_mean_hw_backward(t[0], t[1]); }
static void call_interp_fwd(tal_tensor *t) { tal_interp1d_forward(t[0], t[1]); }
/* the layout ops' index maps: host memory, as a CPU op reads them */
static int32_t MAP2[2] = {1, 0}, BIAS_INDEX[4] = {0, 1, 2, 0};
static tal_index host_index(int32_t *v, int64_t n) {
    tal_index ix = {v, n, TAL_DEV_CPU};
    return ix;
}
static void call_rows_gather(tal_tensor *t) { tal_rows_gather(t[0], t[1], host_index(MAP2, 2)); }
static void call_rows_scatter(tal_tensor *t) {
    tal_rows_scatter(t[0], t[1], host_index(MAP2, 2), 1);
}
static void call_rows_zero(tal_tensor *t) { tal_rows_zero_unmapped(t[0], host_index(MAP2, 2)); }
static void call_bias_gather(tal_tensor *t) {
    tal_bias_gather(t[0], t[1], host_index(BIAS_INDEX, 4));
}
static void call_bias_gather_bwd(tal_tensor *t) {
    static int32_t by_row[3 + 1 + 4];
    int64_t n = tal_index_group_by(by_row, BIAS_INDEX, 4, 3);
    tal_bias_gather_backward(t[0], t[1], host_index(by_row, n));
}
static void call_merge_fwd(tal_tensor *t) { tal_merge2x2_forward(t[0], t[1]); }
static void call_merge_bwd(tal_tensor *t) { tal_merge2x2_backward(t[0], t[1]); }
static void call_transpose(tal_tensor *t) { tal_transpose_last2(t[0], t[1]); }
static void call_pad_end3(tal_tensor *t) { tal_pad_end3(t[0], t[1]); }
static void call_copy_slice1(tal_tensor *t) { tal_copy_slice1(t[0], 1, t[1], 0, 2); }
static void call_mean_last_fwd(tal_tensor *t) { tal_mean_hw_last_forward(t[0], t[1]); }
static void call_mean_last_bwd(tal_tensor *t) { tal_mean_hw_last_backward(t[0], t[1]); }
static void call_bn_fwd(tal_tensor *t) {
    tal_batchnorm_frozen_forward(t[0], t[1], t[2], t[3], t[4], t[5], 1e-5f);
}
static void call_bn_bwd(tal_tensor *t) {
    tal_batchnorm_frozen_backward(t[0], t[1], t[2], t[3], 1e-5f);
}
static void call_max_abs_diff(tal_tensor *t) { (void)tal_max_abs_diff(t[0], t[1]); }
static void call_interp_bwd(tal_tensor *t) { tal_interp1d_backward(t[0], t[1]); }
static void call_mask_columns(tal_tensor *t) { tal_mask_columns(t[0], t[1], t[2]); }
static void call_chscale_fwd(tal_tensor *t) { tal_channel_scale_forward(t[0], t[1], t[2]); }
static void call_chscale_bwd(tal_tensor *t) {
    tal_channel_scale_backward(t[0], t[1], t[2], t[3], t[4]);
}
static void call_pos_table(tal_tensor *t) { tal_add_position_table(t[0], t[1], t[2], t[3]); }
static void call_take_every(tal_tensor *t) { tal_take_every(t[0], t[1], 2); }
static void call_scale_relu_fwd(tal_tensor *t) { tal_scale_relu_forward(t[0], t[1], t[2]); }
static void call_scale_relu_bwd(tal_tensor *t) {
    tal_scale_relu_backward(t[0], t[1], t[2], t[3], t[4], t[5]);
}
static void call_count_nonfinite(tal_tensor *t) { (void)tal_count_nonfinite(t[0]); }
static void call_attn_ct_fwd(tal_tensor *t) {
    tal_attention_ct_forward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], 1, 3);
}
static void call_attn_ct_bwd(tal_tensor *t) {
    tal_attention_ct_backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], 1, 3);
}
static void call_focal(tal_tensor *t) {
    (void)tal_focal_loss_masked(t[0], t[1], t[2], t[3], 0.25f, 2.0f, 1.0f);
}
static void call_diou(tal_tensor *t) {
    (void)tal_diou_loss_offsets(t[0], t[1], t[2], t[3], 2.0f, 1.0f);
}

#define S1(a) {1, {a}}
#define S2(a, b) {2, {a, b}}
#define S3(a, b, c) {3, {a, b, c}}
#define S4(a, b, c, d) {4, {a, b, c, d}}
#define S5(a, b, c, d, e) {5, {a, b, c, d, e}}
#define ATT S4(1, 1, 4, 2)   /* q, k, v, out: [B, H, N, d] */
#define ATT_P S4(1, 1, 4, 4) /* probs */
#define ATT_B S3(1, 4, 4)    /* bias, mask */
#define QKV S3(1, 4, 6)      /* packed qkv of 1 head of d = 2 */
#define X5 S5(1, 3, 2, 2, 2)
#define SEQ S3(1, 2, 5)       /* [B, C, T] */
#define SEQ_M S2(1, 5)        /* its mask */
#define SEQ_P S4(1, 1, 5, 3)  /* band probabilities, window 3 */

static const op_case OPS[] = {
    {"add", 3, {S1(6), S1(6), S1(6)}, call_add},
    {"sub", 3, {S1(6), S1(6), S1(6)}, call_sub},
    {"mul", 3, {S1(6), S1(6), S1(6)}, call_mul},
    {"scale", 2, {S1(6), S1(6)}, call_scale},
    {"axpy", 2, {S1(6), S1(6)}, call_axpy},
    {"fill", 1, {S1(6)}, call_fill},
    {"bmm", 3, {S3(2, 3, 5), S3(2, 3, 4), S3(2, 4, 5)}, call_bmm},
    {"linear_forward", 4, {S2(4, 5), S2(4, 3), S2(5, 3), S1(5)}, call_linear_fwd},
    {"linear_backward", 6, {S2(4, 3), S2(5, 3), S1(5), S2(4, 5), S2(4, 3), S2(5, 3)},
     call_linear_bwd},
    {"layernorm_forward", 6, {S2(4, 6), S1(4), S1(4), S2(4, 6), S1(6), S1(6)}, call_ln_fwd},
    {"layernorm_backward", 8,
     {S2(4, 6), S1(6), S1(6), S2(4, 6), S2(4, 6), S1(6), S1(4), S1(4)}, call_ln_bwd},
    {"layernorm_ct_forward", 6, {S3(2, 6, 3), S1(6), S1(6), S3(2, 6, 3), S1(6), S1(6)},
     call_ln_ct_fwd},
    {"layernorm_ct_backward", 8,
     {S3(2, 6, 3), S1(6), S1(6), S3(2, 6, 3), S3(2, 6, 3), S1(6), S1(6), S1(6)},
     call_ln_ct_bwd},
    {"gelu_forward", 2, {S1(6), S1(6)}, call_gelu_fwd},
    {"gelu_backward", 3, {S1(6), S1(6), S1(6)}, call_gelu_bwd},
    {"relu_forward", 2, {S1(6), S1(6)}, call_relu_fwd},
    {"relu_backward", 3, {S1(6), S1(6), S1(6)}, call_relu_bwd},
    {"softmax_forward", 2, {S2(2, 5), S2(2, 5)}, call_softmax_fwd},
    {"softmax_backward", 3, {S2(2, 5), S2(2, 5), S2(2, 5)}, call_softmax_bwd},
    {"dropout_forward", 2, {S1(6), S1(6)}, call_dropout_fwd},
    {"dropout_backward", 2, {S1(6), S1(6)}, call_dropout_bwd},
    {"drop_path_forward", 2, {S2(2, 3), S2(2, 3)}, call_drop_path_fwd},
    {"drop_path_backward", 2, {S2(2, 3), S2(2, 3)}, call_drop_path_bwd},
    {"attention_forward", 7, {ATT, ATT_P, ATT, ATT, ATT, ATT_B, ATT_B}, call_attn_fwd},
    {"attention_backward", 9, {ATT, ATT, ATT, ATT_B, ATT, ATT, ATT, ATT, ATT_P}, call_attn_bwd},
    {"attention_qkv_forward", 5, {S3(1, 4, 2), ATT_P, QKV, ATT_B, ATT_B}, call_attn_qkv_fwd},
    {"attention_qkv_backward", 5, {QKV, ATT_B, S3(1, 4, 2), QKV, ATT_P}, call_attn_qkv_bwd},
    {"patch_conv3d_forward", 4, {S5(1, 2, 1, 1, 1), X5, S5(2, 3, 2, 2, 2), S1(2)},
     call_patch_fwd},
    {"patch_conv3d_backward", 6,
     {X5, S5(2, 3, 2, 2, 2), S1(2), S5(1, 2, 1, 1, 1), X5, S5(2, 3, 2, 2, 2)}, call_patch_bwd},
    {"conv3d_forward", 4, {S5(1, 2, 2, 2, 2), X5, S5(2, 3, 3, 3, 3), S1(2)}, call_conv3d_fwd},
    {"conv3d_backward", 6,
     {X5, S5(2, 3, 3, 3, 3), S1(2), S5(1, 2, 2, 2, 2), X5, S5(2, 3, 3, 3, 3)}, call_conv3d_bwd},
    {"conv1d_forward", 5, {S3(1, 4, 5), S3(1, 3, 5), S3(4, 3, 3), S1(4), S2(1, 5)},
     call_conv1d_fwd},
    {"conv1d_backward", 7,
     {S3(1, 3, 5), S3(4, 3, 3), S1(4), S3(1, 4, 5), S3(1, 3, 5), S3(4, 3, 3), S2(1, 5)},
     call_conv1d_bwd},
    {"maxpool1d_forward", 3, {S3(1, 2, 3), S3(1, 2, 3), S3(1, 2, 5)}, call_maxpool_fwd},
    {"maxpool1d_backward", 3, {S3(1, 2, 5), S3(1, 2, 3), S3(1, 2, 3)}, call_maxpool_bwd},
    {"maxpool3d_forward", 2, {S5(1, 2, 2, 2, 2), S5(1, 2, 3, 4, 4)}, call_maxpool3d_fwd},
    {"maxpool3d_backward", 3, {S5(1, 2, 3, 4, 4), S5(1, 2, 2, 2, 2), S5(1, 2, 3, 4, 4)},
     call_maxpool3d_bwd},
    {"mean_hw_forward", 2, {S3(1, 2, 3), S5(1, 2, 3, 2, 2)}, call_mean_fwd},
    {"mean_hw_backward", 2, {S5(1, 2, 3, 2, 2), S3(1, 2, 3)}, call_mean_bwd},
    {"interp1d_forward", 2, {S3(1, 2, 5), S3(1, 2, 3)}, call_interp_fwd},
    {"interp1d_backward", 2, {S3(1, 2, 3), S3(1, 2, 5)}, call_interp_bwd},
    {"rows_gather", 2, {S2(2, 3), S2(2, 3)}, call_rows_gather},
    {"rows_scatter", 2, {S2(2, 3), S2(2, 3)}, call_rows_scatter},
    {"rows_zero_unmapped", 1, {S2(2, 3)}, call_rows_zero},
    {"bias_gather", 2, {S3(1, 2, 2), S2(3, 1)}, call_bias_gather},
    {"bias_gather_backward", 2, {S2(3, 1), S3(1, 2, 2)}, call_bias_gather_bwd},
    {"merge2x2_forward", 2, {S4(1, 1, 1, 8), S4(1, 2, 2, 2)}, call_merge_fwd},
    {"merge2x2_backward", 2, {S4(1, 2, 2, 2), S4(1, 1, 1, 8)}, call_merge_bwd},
    {"transpose_last2", 2, {S3(1, 3, 2), S3(1, 2, 3)}, call_transpose},
    {"pad_end3", 2, {S4(1, 3, 3, 3), S4(1, 2, 2, 2)}, call_pad_end3},
    {"copy_slice1", 2, {S3(1, 4, 2), S3(1, 3, 2)}, call_copy_slice1},
    {"mean_hw_last_forward", 2, {S3(1, 2, 3), S4(1, 3, 4, 2)}, call_mean_last_fwd},
    {"mean_hw_last_backward", 2, {S4(1, 3, 4, 2), S3(1, 2, 3)}, call_mean_last_bwd},
    {"batchnorm_frozen_forward", 6, {S3(1, 2, 3), S3(1, 2, 3), S1(2), S1(2), S1(2), S1(2)},
     call_bn_fwd},
    {"batchnorm_frozen_backward", 4, {S3(1, 2, 3), S3(1, 2, 3), S1(2), S1(2)}, call_bn_bwd},
    {"max_abs_diff", 2, {S1(6), S1(6)}, call_max_abs_diff},
    {"mask_columns", 3, {SEQ, SEQ, SEQ_M}, call_mask_columns},
    {"channel_scale_forward", 3, {SEQ, SEQ, S1(2)}, call_chscale_fwd},
    {"channel_scale_backward", 5, {SEQ, S1(2), SEQ, SEQ, S1(2)}, call_chscale_bwd},
    {"add_position_table", 4, {SEQ, SEQ, S2(2, 6), SEQ_M}, call_pos_table},
    {"take_every", 2, {S2(1, 3), SEQ_M}, call_take_every},
    {"scale_relu_forward", 3, {SEQ, SEQ, S1(1)}, call_scale_relu_fwd},
    {"scale_relu_backward", 6, {SEQ, S1(1), SEQ, SEQ, SEQ, S1(1)}, call_scale_relu_bwd},
    {"count_nonfinite", 1, {SEQ}, call_count_nonfinite},
    {"attention_ct_forward", 7, {SEQ, SEQ_P, SEQ, SEQ, SEQ, SEQ_M, SEQ_M}, call_attn_ct_fwd},
    {"attention_ct_backward", 9, {SEQ, SEQ, SEQ, SEQ_P, SEQ, SEQ, SEQ, SEQ, SEQ_P},
     call_attn_ct_bwd},
    {"focal_loss_masked", 4, {SEQ, SEQ, SEQ, SEQ_M}, call_focal},
    {"diou_loss_offsets", 4, {SEQ, SEQ, SEQ, SEQ_M}, call_diou},
};
#define N_OPS (int)(sizeof OPS / sizeof OPS[0])

/* The op's tensors on the CPU, filled with 0.5 (a valid rstd, argmax 0, probabilities). */
static void make_args(const op_case *op, tal_tensor *t) {
    for (int j = 0; j < op->n_args; j++) {
        t[j] = test_tensor(op->shapes[j].ndim, op->shapes[j].d);
        tal_fill(t[j], 0.5f);
    }
}

/* The control: with every tensor on the CPU each case runs (so an abort below comes from the
 * device tag, not from a shape the case got wrong). */
ParameterizedTestParameters(nn_device_guard, all_on_the_cpu_runs) {
    static int ops[N_OPS];
    for (int i = 0; i < N_OPS; i++) ops[i] = i;
    return cr_make_param_array(int, ops, (size_t)N_OPS);
}

ParameterizedTest(int *i, nn_device_guard, all_on_the_cpu_runs) {
    tal_tensor t[MAX_ARGS];
    make_args(&OPS[*i], t);
    OPS[*i].call(t);
}

typedef struct guard_case {
    int op, arg;
} guard_case;

ParameterizedTestParameters(nn_device_guard, device_tensor_aborts) {
    static guard_case cases[N_OPS * MAX_ARGS];
    int n = 0;
    for (int i = 0; i < N_OPS; i++)
        for (int j = 0; j < OPS[i].n_args; j++) cases[n++] = (guard_case){i, j};
    return cr_make_param_array(guard_case, cases, (size_t)n);
}

ParameterizedTest(guard_case *c, nn_device_guard, device_tensor_aborts, .signal = SIGABRT) {
    const op_case *op = &OPS[c->op];
    tal_tensor t[MAX_ARGS];
    make_args(op, t);
    t[c->arg].device = TAL_DEV_CUDA; /* host memory that claims to be device memory */
    cr_log_info("%s with argument %d tagged as a CUDA tensor", op->name, c->arg);
    op->call(t);
    cr_log_error("%s ran with argument %d on the wrong device", op->name, c->arg);
}
