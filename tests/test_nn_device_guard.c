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

#define MAX_ARGS 8

typedef struct op_case {
    const char *name;
    int n_args;
    shape shapes[MAX_ARGS];
    void (*call)(tal_tensor *t);
} op_case;

static void call_add(tal_tensor *t) { tal_add(t[0], t[1], t[2]); }
static void call_sub(tal_tensor *t) { tal_sub(t[0], t[1], t[2]); }
static void call_mul(tal_tensor *t) { tal_mul(t[0], t[1], t[2]); }
static void call_scale(tal_tensor *t) { tal_scale(t[0], t[1], 2.0f); }
static void call_axpy(tal_tensor *t) { tal_axpy(t[0], 2.0f, t[1]); }
static void call_fill(tal_tensor *t) { tal_fill(t[0], 1.0f); }
static void call_bmm(tal_tensor *t) { tal_bmm(t[0], t[1], t[2], 0, 0, 1.0f, 0.0f); }

#define S1(a) {1, {a}}
#define S2(a, b) {2, {a, b}}
#define S3(a, b, c) {3, {a, b, c}}

static const op_case OPS[] = {
    {"add", 3, {S1(6), S1(6), S1(6)}, call_add},
    {"sub", 3, {S1(6), S1(6), S1(6)}, call_sub},
    {"mul", 3, {S1(6), S1(6), S1(6)}, call_mul},
    {"scale", 2, {S1(6), S1(6)}, call_scale},
    {"axpy", 2, {S1(6), S1(6)}, call_axpy},
    {"fill", 1, {S1(6)}, call_fill},
    {"bmm", 3, {S3(2, 3, 5), S3(2, 3, 4), S3(2, 4, 5)}, call_bmm},
};
#define N_OPS (int)(sizeof OPS / sizeof OPS[0])

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
    for (int j = 0; j < op->n_args; j++) {
        t[j] = test_tensor(op->shapes[j].ndim, op->shapes[j].d);
        tal_fill(t[j], 0.5f);
    }
    t[c->arg].device = TAL_DEV_CUDA; /* host memory that claims to be device memory */
    cr_log_info("%s with argument %d tagged as a CUDA tensor", op->name, c->arg);
    op->call(t);
    cr_log_error("%s ran with argument %d on the wrong device", op->name, c->arg);
}
