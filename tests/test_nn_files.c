/* Input files that are not what a reader expects: folders, devices, pipes and files over the
 * size limit get one clear error naming the path (tal_file_open / tal_file_read); weights
 * holding NaN or Inf are refused on read and on write unless allowed, naming the tensor. */
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void cleanup(void) {
    unsetenv("RE2TAL_MAX_INPUT_BYTES");
    tal_safetensors_allow_nonfinite(0);
}
TestSuite(nn_files, .fini = cleanup);

static void write_text(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(text, 1, n, f), n);
    fclose(f);
}

/* tal_file_read must fail with code, naming path and saying `says`. */
static void expect_refused(const char *path, tal_status code, const char *says) {
    char *text = (char *)1;
    size_t n = 7;
    tal_err err = {0};
    cr_assert_eq(tal_file_read(&text, &n, path, 0, &err), code, "%s: got %s: %s", path,
                 tal_status_name(err.code), err.msg);
    cr_assert_null(text);
    cr_assert_eq(n, 0);
    cr_assert(strstr(err.msg, path), "message must name the path: %s", err.msg);
    cr_assert(strstr(err.msg, says), "message must say '%s': %s", says, err.msg);
}

Test(nn_files, reads_a_regular_file_whole) {
    const char *path = test_tmp_path("nn_files_ok.txt");
    write_text(path, "abc\0def", 7);
    char *text = NULL;
    size_t n = 0;
    tal_err err = {0};
    cr_assert_eq(tal_file_read(&text, &n, path, 0, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(n, 7);
    cr_assert_eq(memcmp(text, "abc\0def", 8), 0, "content and the terminating NUL");
    free(text);
    write_text(path, "", 0);
    cr_assert_eq(tal_file_read(&text, NULL, path, 0, &err), TAL_OK, "%s", err.msg);
    cr_assert_str_eq(text, "");
    free(text);
}

Test(nn_files, folders_devices_pipes_and_missing_files_are_refused) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", TEST_TMP);
    expect_refused(dir, TAL_EIO, "is a folder, not a file");
    expect_refused("/dev/zero", TAL_EIO, "is a character device, not a file");
    const char *fifo = test_tmp_path("nn_files_fifo");
    unlink(fifo);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    expect_refused(fifo, TAL_EIO, "is a pipe, not a file"); /* and does not wait for a writer */
    unlink(fifo);
    expect_refused(test_tmp_path("nn_files_missing.json"), TAL_EIO, "cannot open");
}

Test(nn_files, size_limit_from_the_caller_and_the_environment) {
    const char *path = test_tmp_path("nn_files_big.json");
    char buf[3000];
    memset(buf, ' ', sizeof buf);
    write_text(path, buf, sizeof buf);
    char *text = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_file_read(&text, NULL, path, 2999, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, path) && strstr(err.msg, "2.9 KiB, more than the 2.9 KiB limit"),
              "%s", err.msg);
    cr_assert(strstr(err.msg, "RE2TAL_MAX_INPUT_BYTES"), "how to raise it: %s", err.msg);
    cr_assert_eq(tal_file_read(&text, NULL, path, 3000, &err), TAL_OK, "%s", err.msg);
    free(text);

    cr_assert_eq(tal_file_limit_bytes(), (size_t)1 << 30, "default 1 GiB");
    setenv("RE2TAL_MAX_INPUT_BYTES", "2K", 1);
    cr_assert_eq(tal_file_limit_bytes(), 2048);
    expect_refused(path, TAL_EFORMAT, "more than the 2.0 KiB limit");
    setenv("RE2TAL_MAX_INPUT_BYTES", "1MiB", 1);
    cr_assert_eq(tal_file_limit_bytes(), (size_t)1 << 20);
    setenv("RE2TAL_MAX_INPUT_BYTES", "3000", 1);
    cr_assert_eq(tal_file_read(&text, NULL, path, 0, &err), TAL_OK, "%s", err.msg);
    free(text);
    /* nonsense falls back to the default rather than to 0 bytes */
    const char *bad[] = {"lots", "-5", "12Q", "0", ""};
    for (int i = 0; i < 5; i++) {
        setenv("RE2TAL_MAX_INPUT_BYTES", bad[i], 1);
        cr_assert_eq(tal_file_limit_bytes(), (size_t)1 << 30, "'%s'", bad[i]);
    }
}

Test(nn_files, file_open_gives_the_size_and_the_same_checks) {
    const char *path = test_tmp_path("nn_files_open.bin");
    write_text(path, "12345", 5);
    FILE *f = NULL;
    size_t n = 0;
    tal_err err = {0};
    cr_assert_eq(tal_file_open(&f, &n, path, 0, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(n, 5);
    char c[6] = {0};
    cr_assert_eq(fread(c, 1, 5, f), 5);
    cr_assert_str_eq(c, "12345");
    fclose(f);
    cr_assert_eq(tal_file_open(&f, &n, "/dev/null", 0, &err), TAL_EIO);
    cr_assert_null(f);
    cr_assert(strstr(err.msg, "/dev/null: is a character device"), "%s", err.msg);
}

/* ---------------------------------------------------------------- non-finite weights --- */
static const char *write_weights(const char *name, float bad_value, int n_bad_tensors) {
    static float a[6], b[4], c[3];
    for (int i = 0; i < 6; i++) a[i] = (float)i;
    for (int i = 0; i < 4; i++) b[i] = -(float)i;
    for (int i = 0; i < 3; i++) c[i] = 0.5f;
    if (n_bad_tensors >= 1) b[2] = b[3] = bad_value;
    if (n_bad_tensors >= 2) c[0] = bad_value;
    tal_named_tensor items[3] = {{"head.w", tal_t2(a, 2, 3), "F32"},
                                 {"layers.1.bias", tal_t1(b, 4), "F32"},
                                 {"norm.weight", tal_t1(c, 3), "F32"}};
    const char *path = test_tmp_path(name);
    tal_err err = {0};
    tal_safetensors_allow_nonfinite(1);
    cr_assert_eq(tal_safetensors_write(path, items, 3, NULL, &err), TAL_OK, "%s", err.msg);
    tal_safetensors_allow_nonfinite(0);
    return path;
}

Test(nn_files, nonfinite_weights_are_refused_on_read_naming_the_tensor) {
    const char *path = write_weights("nn_files_nan.safetensors", NAN, 2);
    tal_tensor_set set;
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_read(&set, path, &err), TAL_EFORMAT, "%s", err.msg);
    cr_assert_eq(set.count, 0);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    cr_assert(strstr(err.msg, "tensor 'layers.1.bias': 2 non-finite values (first at index 2: "
                              "nan); 2 of 3 tensors have some"),
              "%s", err.msg);
    cr_assert(strstr(err.msg, "--allow-nonfinite"), "how to load it anyway: %s", err.msg);

    path = write_weights("nn_files_inf.safetensors", -INFINITY, 1);
    cr_assert_eq(tal_safetensors_read(&set, path, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "(first at index 2: -inf); 1 of 3 tensors"), "%s", err.msg);

    tal_safetensors_allow_nonfinite(1);
    cr_assert(tal_safetensors_nonfinite_allowed());
    cr_assert_eq(tal_safetensors_read(&set, path, &err), TAL_OK, "%s", err.msg);
    cr_assert(isinf(tal_tensor_set_find(&set, "layers.1.bias")->t.data[3]));
    tal_tensor_set_free(&set);
}

Test(nn_files, params_load_refuses_nonfinite_and_changes_nothing) {
    const char *path = write_weights("nn_files_params_nan.safetensors", NAN, 1);
    tal_params *p = tal_params_create();
    int g = tal_params_add_group(p, "all", 1, 0);
    tal_params_declare(p, "head.w", 2, (int64_t[]){2, 3}, g, 1);
    tal_params_declare(p, "layers.1.bias", 1, (int64_t[]){4}, g, 1);
    tal_params_declare(p, "norm.weight", 1, (int64_t[]){3}, g, 1);
    tal_err err = {0};
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK);
    tal_fill(tal_params_find(p, "head.w")->value, 9);
    cr_assert_eq(tal_params_load(p, path, NULL, NULL, 0, NULL, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "layers.1.bias"), "%s", err.msg);
    cr_assert_eq(tal_params_find(p, "head.w")->value.data[0], 9.0f, "untouched");
    tal_safetensors_allow_nonfinite(1);
    cr_assert_eq(tal_params_load(p, path, NULL, NULL, 0, NULL, &err), TAL_OK, "%s", err.msg);
    cr_assert(isnan(tal_params_find(p, "layers.1.bias")->value.data[2]));
    tal_params_destroy(p);
}

Test(nn_files, nonfinite_tensors_are_not_written) {
    float v[5] = {1, 2, INFINITY, NAN, 3};
    tal_named_tensor items[2] = {{"ok", tal_t1(v, 2), "F32"}, {"bad", tal_t1(v, 5), "F32"}};
    const char *path = test_tmp_path("nn_files_never.safetensors");
    unlink(path);
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_write(path, items, 2, NULL, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "tensor 'bad': 2 non-finite values (first at index 2: inf); 1 of 2"),
              "%s", err.msg);
    cr_assert(strstr(err.msg, "not written"), "%s", err.msg);
    cr_assert_neq(access(path, F_OK), 0, "no file left behind");
    cr_assert_eq(tal_tensors_check_finite(items, 1, "x", &err), TAL_OK);
}
