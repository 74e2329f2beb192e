/* tests/test_app_report.c: `re2tal report` and the demo's report.html, opened in headless
 * Chromium (Debian's chromium, installed by scripts/install-deps.sh; its absence fails these
 * tests): the page's script runs to the end, there is one timeline per video, the mAP tables
 * hold the numbers of `re2tal eval --json`, timelines are drawn lazily (all of them with #all,
 * each with its GT and detections), the filter box, score slider, hover and sorting work,
 * hostile names stay text, and a screenshot is not blank.
 * Also the command line: usage errors, bad input, the training log. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

static char g_dir[1024];

/* Shell commands and files in this test's folder. */
#define sh(...) test_sh_in(g_dir, __VA_ARGS__)
#define slurp(name) test_slurp_in(g_dir, name)

static void write_file(const char *name, const char *text) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "%s/report_%d", TEST_TMP, (int)getpid());
    mkdir(g_dir, 0755);
}

static void teardown(void) { sh("cd .. && rm -rf '%s'", g_dir); }

TestSuite(app_report, .init = setup, .fini = teardown, .timeout = 600);

#define BIN RE2TAL_BIN " --threads 1"

/* ---------------------------------------------------------------- Chromium -------------- */
static void need_chromium(void) {
    cr_assert_eq(sh("command -v chromium > /dev/null"), 0,
                 "chromium is not installed: scripts/install-deps.sh installs it (make test runs "
                 "that script); the report's tests open the page in headless Chromium");
}

/* Opens page#hash in headless Chromium (JS run, timers and scrolling given 5 s of virtual time)
 * and returns the DOM it ends with (caller frees). */
static char *dump_dom(const char *page, const char *hash) {
    need_chromium();
    cr_assert_eq(sh("timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
                    "--user-data-dir=chrome --window-size=1280,1600 --virtual-time-budget=5000 "
                    "--dump-dom 'file://%s/%s%s' > dom.html 2> chrome.log", g_dir, page, hash), 0,
                 "chromium --dump-dom %s failed (see %s/chrome.log)", page, g_dir);
    char *dom = slurp("dom.html");
    cr_assert(dom && strstr(dom, "data-ready=\"yes\""), "the page's script did not run to its end "
              "in Chromium (%s%s)", page, hash);
    return dom;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* The value of attribute `name` in the element text at p (up to its '>'), or NULL. */
static const char *attr(const char *p, const char *name, char *buf, size_t size) {
    char pat[64];
    snprintf(pat, sizeof pat, " %s=\"", name);
    const char *end = strchr(p, '>'), *a = strstr(p, pat);
    if (!a || (end && a > end)) return NULL;
    a += strlen(pat);
    size_t n = strcspn(a, "\"");
    snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), a);
    return buf;
}

/* Every timeline of the DOM: one per video, each drawn (with #all) with its GT and detections. */
static int check_timelines(const char *dom, int expect_drawn_all) {
    int n = 0;
    for (const char *p = strstr(dom, "<div class=\"timeline\""); p;
         p = strstr(p + 1, "<div class=\"timeline\"")) {
        char state[32], gt[16], dets[16];
        cr_assert(attr(p, "data-state", state, sizeof state) && attr(p, "data-gt", gt, sizeof gt) &&
                  attr(p, "data-dets", dets, sizeof dets), "timeline %d lacks its attributes", n);
        if (expect_drawn_all) {
            cr_expect_str_eq(state, "drawn", "timeline %d", n);
            const char *next = strstr(p + 1, "<div class=\"timeline\"");
            size_t len = next ? (size_t)(next - p) : strlen(p);
            char *one = strndup(p, len);
            cr_expect_eq(count(one, "class=\"gt\""), atoi(gt), "timeline %d: GT drawn", n);
            cr_expect_eq(count(one, "class=\"pred\""), atoi(dets), "timeline %d: detections drawn",
                         n);
            free(one);
        }
        n++;
    }
    return n;
}

/* Compares each data-v of the table `id` with the numbers eval's JSON gives for it. */
static void check_map_table(const char *dom, const cJSON *eval) {
    const char *table = strstr(dom, "id=\"map-table\"");
    cr_assert(table, "no mAP table in the DOM");
    const cJSON *map = cJSON_GetObjectItem(eval, "mAP");
    int n = cJSON_GetArraySize(map), k = 0;
    const char *end = strstr(table, "</table>");
    for (const char *p = strstr(table, "<td data-v="); p && p < end;
         p = strstr(p + 1, "<td data-v=")) {
        char v[64], t[32];
        cr_assert(attr(p, "data-v", v, sizeof v) && attr(p, "data-tiou", t, sizeof t));
        double want = k < n ? cJSON_GetArrayItem(map, k)->valuedouble
                            : cJSON_GetObjectItem(eval, "average_mAP")->valuedouble;
        cr_expect_eq(strtod(v, NULL), want, "mAP table cell %d (tIoU %s): page %s, eval --json "
                     "%.17g", k, t, v, want);
        k++;
    }
    cr_expect_eq(k, n + 1, "%d cells: one per threshold and the average", k);
    /* per class: the AP cells of each row, in the order of eval's per_class */
    const cJSON *per_class = cJSON_GetObjectItem(eval, "per_class"), *c;
    const char *rows = strstr(dom, "id=\"class-table\"");
    cr_assert(rows, "no per-class table");
    int n_rows = 0;
    cJSON_ArrayForEach(c, per_class) {
        const char *row = strstr(rows, "<tr data-c=");
        cr_assert(row, "class %s has no row", c->string);
        const cJSON *ap = cJSON_GetObjectItem(c, "AP");
        const char *cell = strstr(row, "<td class=\"num\" data-v=");
        for (int skip = 0; skip < 2; skip++) cell = strstr(cell + 1, "<td class=\"num\" data-v=");
        for (int t = 0; t < cJSON_GetArraySize(ap);
             t++, cell = strstr(cell + 1, "<td class=\"num\"")) {
            char v[64];
            cr_assert(attr(cell, "data-v", v, sizeof v));
            cr_expect_eq(strtod(v, NULL), cJSON_GetArrayItem(ap, t)->valuedouble,
                         "class %s, AP %d: page %s", c->string, t, v);
        }
        rows = row + 1;
        n_rows++;
    }
    cr_expect_gt(n_rows, 0);
}

/* A screenshot decoded with ffmpeg: enough non-white pixels and some colour (plots, bars). */
static void check_screenshot(const char *page) {
    cr_assert_eq(sh("timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
                    "--user-data-dir=chrome --window-size=1280,1600 --virtual-time-budget=5000 "
                    "--screenshot=%s/shot.png 'file://%s/%s' > /dev/null 2>> chrome.log", g_dir,
                    g_dir, page), 0, "chromium --screenshot failed");
    cr_assert_eq(sh("ffmpeg -v error -y -i shot.png -f rawvideo -pix_fmt rgb24 shot.rgb"), 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/shot.rgb", g_dir);
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    long n = 0, ink = 0, colour = 0;
    unsigned char px[3];
    while (fread(px, 1, 3, f) == 3) {
        int lo = px[0] < px[1] ? px[0] : px[1], hi = px[0] > px[1] ? px[0] : px[1];
        lo = px[2] < lo ? px[2] : lo, hi = px[2] > hi ? px[2] : hi;
        n++;
        ink += hi < 235;
        colour += hi - lo > 60;
    }
    fclose(f);
    cr_assert_eq(n, 1280L * 1600, "screenshot of %ld pixels", n);
    cr_expect_gt(ink, n / 40, "screenshot nearly blank: %ld of %ld pixels drawn", ink, n);
    cr_expect_gt(colour, n / 500, "screenshot without colour: %ld of %ld pixels", colour, n);
}

static cJSON *read_json(const char *name) {
    char *text = slurp(name);
    cr_assert(text, "%s not written", name);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cr_assert(j, "%s is not JSON", name);
    return j;
}

/* ---------------------------------------------------------------- the demo's report ----- */
static const char *TINY =
    "{\"data\": {\"sampler\": \"resize\", \"frames\": 16, \"resize_len\": 8, \"short_side\": 32,"
    " \"crop\": 32, \"rrc_scale_min\": 0, \"flip\": 0.5, \"prefetch\": 2},\n"
    " \"backbone\": {\"preset\": \"swin_small_test\", \"embed_dim\": 16, \"depths\": [2, 2],"
    " \"heads\": [1, 2], \"window\": [4, 4, 4], \"drop_path_rate\": 0.1,"
    " \"mode\": \"reversible\"},\n"
    " \"head\": {\"channels\": 32, \"n_head\": 2, \"arch\": [2, 1, 2], \"init_loss_norm\": 4,"
    " \"max_seg_num\": 20},\n"
    " \"optim\": {\"epochs\": 3, \"batch_size\": 2, \"lr_head\": 0.001, \"lr_backbone\": 0.0005,"
    " \"warmup_epochs\": 1, \"ema_decay\": 0.9},\n"
    " \"train\": {\"seed\": 3, \"eval_every\": 1, \"eval_start\": 1, \"checkpoint_every\": 0},\n"
    " \"eval\": {\"tiou\": [0.3, 0.5, 0.7]}}\n";

Test(app_report, demo_report_in_chromium) {
    write_file("tiny.json", TINY);
    cr_assert_eq(sh(BIN " demo --config tiny.json --out d --videos 16 --quiet > demo.txt 2>&1"), 0,
                 "re2tal demo failed (%s/demo.txt)", g_dir);
    char *demo_out = slurp("demo.txt");
    cr_expect(demo_out && strstr(demo_out, "report: d/report.html"), "%s", demo_out);
    free(demo_out);
    /* the numbers `re2tal eval` gives with the demo's options */
    cr_assert_eq(sh(BIN " eval --gt d/data/annotations.json --pred d/results.json --tiou "
                    "0.3,0.5,0.7 --ignore-unknown-labels --json e.json > /dev/null"), 0);
    cJSON *eval = read_json("e.json");
    char *dom = dump_dom("d/report.html", "");
    check_map_table(dom, eval);
    /* one timeline per validation video (the demo detects on those only) */
    cJSON *anno = read_json("d/data/annotations.json"), *v;
    int n_val = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(anno, "database")) {
        if (strcmp(cJSON_GetObjectItem(v, "subset")->valuestring, "validation")) continue;
        char want[300];
        snprintf(want, sizeof want, "data-video=\"%s\"", v->string);
        cr_expect(strstr(dom, want), "no timeline for %s", v->string);
        n_val++;
    }
    cr_assert_gt(n_val, 1);
    cr_expect_eq(check_timelines(dom, 0), n_val);
    cr_expect(strstr(dom, "id=\"training\"") && strstr(dom, "d/run/log.jsonl"), "training curves");
    free(dom);
    dom = dump_dom("d/report.html", "#all");
    cr_expect_eq(check_timelines(dom, 1), n_val);
    free(dom);
    check_screenshot("d/report.html");
    cJSON_Delete(anno);
    cJSON_Delete(eval);
}

/* A copy of the page `from` with `script` run after the page's own (to drive its controls). */
static void write_driven(const char *from, const char *to, const char *script) {
    char *page = slurp(from);
    cr_assert(page, "%s not written", from);
    char *end = strstr(page, "</body>");
    cr_assert(end);
    *end = 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", g_dir, to);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "%s<script>\n%s</script>\n</body>\n</html>\n", page, script);
    fclose(f);
    free(page);
}

/* ---------------------------------------------------------------- at scale, lazily ------ */
/* n videos of 60 s with 2 GT and 20 detections each (3 classes), deterministic. */
static void write_many(int n) {
    FILE *g = fopen("many_gt.json", "w"), *p = fopen("many_pred.json", "w");
    cr_assert(g && p);
    fputs("{\"database\": {", g);
    fputs("{\"results\": {", p);
    unsigned x = 12345;
    for (int v = 0; v < n; v++) {
        fprintf(g, "%s\"vid%04d\": {\"subset\": \"validation\", \"duration\": 60, "
                   "\"annotations\": [{\"segment\": [%d, %d], \"label\": \"c%d\"}, "
                   "{\"segment\": [40, 50], \"label\": \"c%d\"}]}", v ? "," : "", v, v % 20,
                v % 20 + 8, v % 3, (v + 1) % 3);
        fprintf(p, "%s\"vid%04d\": [", v ? "," : "", v);
        for (int k = 0; k < 20; k++) {
            x = x * 1103515245u + 12345u;
            double t0 = (x >> 8) % 5000 / 100.0, score = ((x >> 4) % 1000) / 1000.0;
            fprintf(p, "%s{\"label\": \"c%d\", \"score\": %g, \"segment\": [%g, %g]}", k ? "," : "",
                    (int)(x % 3), score, t0, t0 + 2 + k % 8);
        }
        fputs("]", p);
    }
    fputs("}}\n", g);
    fputs("}}\n", p);
    fclose(g);
    fclose(p);
}

/* Placeholders for all, drawn near the view at load (or at #anchor), all with #all. Drawing on
 * scroll (IntersectionObserver) needs the browser to render frames, which headless --dump-dom
 * does not do reliably: that part is not checked here. */
Test(app_report, many_videos_drawn_lazily) {
    cr_assert_eq(chdir(g_dir), 0);
    write_many(300);
    cr_assert_eq(sh(BIN " report --gt many_gt.json --pred many_pred.json --out many.html > r.txt"),
                 0);
    char *dom = dump_dom("many.html", "");
    cr_expect_eq(check_timelines(dom, 0), 300, "one timeline (placeholder) per video");
    int drawn = count(dom, "data-state=\"drawn\"");
    cr_expect_lt(drawn, 300, "timelines below the fold are not drawn yet (%d drawn)", drawn);
    free(dom);
    dom = dump_dom("many.html", "#videos"); /* scrolled to the list: the first ones are drawn */
    drawn = count(dom, "data-state=\"drawn\"");
    cr_expect(drawn >= 1 && drawn < 300, "%d timelines drawn around the view", drawn);
    cr_expect(strstr(strstr(dom, "<div class=\"timeline\""), "data-state=\"drawn\""),
              "the first video in view is drawn");
    free(dom);
    dom = dump_dom("many.html", "#all");
    cr_expect_eq(check_timelines(dom, 1), 300);
    free(dom);
}

/* The controls work: the page with a script appended that types in the filter box, moves the
 * score slider to the top, hovers a detection and sorts the per-class table by its last column,
 * writing what it saw into data- attributes of <body>. */
static const char *DRIVE =
    "(function () {\n"
    "  const b = document.body, f = document.getElementById('filter');\n"
    "  f.value = 'vid001'; f.dispatchEvent(new Event('input'));\n"
    "  b.dataset.shownAfterFilter = document.querySelectorAll('.video:not([hidden])').length;\n"
    "  f.value = ''; f.dispatchEvent(new Event('input'));\n"
    "  const r = document.querySelector('rect.pred');\n"
    "  r.dispatchEvent(new MouseEvent('mousemove', {bubbles: true, clientX: 10, clientY: 10}));\n"
    "  b.dataset.tooltip = document.getElementById('tooltip').textContent;\n"
    "  const sl = document.getElementById('score-threshold');\n"
    "  sl.value = sl.max; sl.dispatchEvent(new Event('input'));\n"
    "  const th = document.querySelectorAll('#class-table th');\n"
    "  th[th.length - 1].click(); th[th.length - 1].click();\n"
    "  b.dataset.firstAfterSort = document.querySelector('#class-table tbody tr').dataset.c;\n"
    "  b.dataset.predsAtTop = document.querySelectorAll('rect.pred').length;\n"
    "})();\n";

Test(app_report, controls_filter_slider_hover_sort) {
    cr_assert_eq(chdir(g_dir), 0);
    write_many(300);
    cr_assert_eq(sh(BIN " report --gt many_gt.json --pred many_pred.json --out m.html > r.txt"), 0);
    write_driven("m.html", "driven.html", DRIVE);
    char *page = slurp("m.html");
    /* what to expect, from the page's own data: the class of lowest average AP, and how many
     * detections hold the top score */
    char *start = strstr(page, "id=\"report-data\">") + strlen("id=\"report-data\">");
    *strstr(start, "</script>") = 0;
    cJSON *data = cJSON_Parse(start), *ap, *video;
    cr_assert(data);
    int worst = -1, c = 0, n_top = 0;
    double worst_avg = 2, top = -1;
    cJSON_ArrayForEach(ap, cJSON_GetObjectItem(data, "AP")) {
        double sum = 0;
        int n = cJSON_GetArraySize(ap);
        for (int t = 0; t < n; t++) sum += cJSON_GetArrayItem(ap, t)->valuedouble;
        if (sum / n < worst_avg) worst_avg = sum / n, worst = c;
        c++;
    }
    cJSON_ArrayForEach(video, cJSON_GetObjectItem(data, "videos")) {
        cJSON *dets = cJSON_GetArrayItem(video, 6);
        for (int k = 3; k < cJSON_GetArraySize(dets); k += 8) {
            double score = cJSON_GetArrayItem(dets, k)->valuedouble;
            if (score > top) top = score, n_top = 0;
            n_top += score == top;
        }
    }
    cJSON_Delete(data);
    free(page);
    char *dom = dump_dom("driven.html", "#all"), v[256];
    const char *body = strstr(dom, "<body");
    cr_assert(attr(body, "data-shown-after-filter", v, sizeof v));
    cr_expect_str_eq(v, "10", "the filter 'vid001' leaves vid0010..vid0019");
    cr_assert(attr(body, "data-tooltip", v, sizeof v), "no tooltip");
    cr_expect(strstr(v, "score ") && strstr(v, "tIoU with its best GT"), "tooltip: %s", v);
    cr_assert(attr(body, "data-preds-at-top", v, sizeof v));
    cr_expect_eq(atoi(v), n_top, "%s detections drawn at the top score %g (%d hold it)", v, top,
                 n_top);
    cr_assert(attr(body, "data-first-after-sort", v, sizeof v));
    cr_expect_eq(atoi(v), worst, "sorted by average AP, ascending: class %s first, not %d", v,
                 worst);
    free(dom);
}

/* ---------------------------------------------------------------- hostile names --------- */
Test(app_report, hostile_names_stay_text_in_chromium) {
    write_file("h_gt.json",
               "{\"database\": {\"<img src=x onerror=alert(2)>\": {\"subset\": \"validation\", "
               "\"annotations\": [{\"segment\": [1, 5], \"label\": "
               "\"</script><script>document.title='pwned'</script>\"}]}}}");
    write_file("h_pred.json",
               "{\"results\": {\"<img src=x onerror=alert(2)>\": [{\"label\": "
               "\"</script><script>document.title='pwned'</script>\", \"score\": 0.9, "
               "\"segment\": [1, 4]}]}}");
    cr_assert_eq(sh(BIN " report --gt h_gt.json --pred h_pred.json --out h.html > r.txt"), 0);
    char *dom = dump_dom("h.html", "#all");
    cr_expect_eq(count(dom, "<script"), 2, "no script element from the input");
    cr_expect_eq(count(dom, "<img"), 0, "no img element from the input");
    cr_expect(!strstr(dom, "<title>pwned"), "an injected script ran");
    cr_expect(strstr(dom, "&lt;/script&gt;&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
              "the class name shows as text");
    cr_expect_eq(check_timelines(dom, 1), 1);
    free(dom);
}

/* ---------------------------------------------------------------- command line ---------- */
#define SMALL_GT                                                                               \
    "{\"database\": {\"v1\": {\"subset\": \"validation\", \"annotations\": [{\"segment\": "    \
    "[0, 10], \"label\": \"A\"}]}}}"
#define SMALL_PRED                                                                             \
    "{\"results\": {\"v1\": [{\"label\": \"A\", \"score\": 0.9, \"segment\": [0, 9]}]}}"
#define REPORT BIN " report --gt gt.json --pred pred.json"
#define QUIET " > /dev/null 2> e.txt"

Test(app_report, usage_and_bad_input) {
    write_file("gt.json", SMALL_GT);
    write_file("pred.json", SMALL_PRED);
    cr_expect_eq(sh(BIN " report --help > help.txt"), 0);
    char *help = slurp("help.txt");
    cr_expect(help && strstr(help, "--run") && strstr(help, "--protocol") && strstr(help, "--out"));
    free(help);
    cr_expect_eq(sh(REPORT QUIET), 2, "--out is required");
    cr_expect_eq(sh(REPORT " --out r.html --bogus" QUIET), 2);
    cr_expect_eq(sh(REPORT " --out r.html --tiou 2:1" QUIET), 2);
    cr_expect_eq(sh(BIN " report --gt missing.json --pred pred.json --out r.html" QUIET), 1);
    char *e = slurp("e.txt");
    cr_expect(e && strstr(e, "missing.json"), "names the file: %s", e);
    free(e);
    cr_expect_eq(sh(REPORT " --out no/such/dir/r.html" QUIET), 1);
    e = slurp("e.txt");
    cr_expect(e && strstr(e, "no/such/dir/r.html"), "names the file: %s", e);
    free(e);
    /* --run: the log must be there and be JSON lines */
    char path[1200];
    snprintf(path, sizeof path, "%s/run", g_dir);
    mkdir(path, 0755);
    cr_expect_eq(sh(REPORT " --out r.html --run run" QUIET), 1);
    e = slurp("e.txt");
    cr_expect(e && strstr(e, "run/log.jsonl"), "names the log: %s", e);
    free(e);
    write_file("run/log.jsonl", "{\"epoch\": 1, \"step\": 1, \"loss\": 1}\n{\"epoch\": 1, \"st\n"
                                "{\"epoch\": 1, \"step\": 2, \"loss\": 1}\n");
    cr_expect_eq(sh(REPORT " --out r.html --run run" QUIET), 1);
    e = slurp("e.txt");
    cr_expect(e && strstr(e, "run/log.jsonl:2"), "names the line: %s", e);
    free(e);
    cr_expect_eq(sh(REPORT " --out r.html > o.txt"), 0);
    char *o = slurp("o.txt");
    cr_expect(o && strstr(o, "r.html: 1 videos, average mAP 90.00%"), "%s", o);
    free(o);
}

/* The page's "training" data from a log with a NaN loss, a resume that repeats steps and an
 * unfinished last line; learning rates scaled by the run's config. */
Test(app_report, training_curves_from_the_log) {
    write_file("gt.json", SMALL_GT);
    write_file("pred.json", SMALL_PRED);
    char path[1200];
    snprintf(path, sizeof path, "%s/run", g_dir);
    mkdir(path, 0755);
    write_file("run/config.json", "{\"optim\": {\"lr_head\": 0.001, \"lr_backbone\": 0.0002}}");
    write_file("run/log.jsonl",
               "{\"epoch\": 1, \"step\": 1, \"loss\": 2.0, \"cls\": 1.5, \"reg\": 0.5, "
               "\"lr_scale\": 0.5}\n"
               "{\"epoch\": 1, \"step\": 2, \"loss\": nan, \"cls\": -nan, \"reg\": 0.4, "
               "\"lr_scale\": 1}\n"
               "{\"epoch\": 1, \"val_avg_map\": 0.25, \"val_map_0.5\": 0.5}\n"
               "{\"epoch\": 2, \"step\": 3, \"loss\": 1.0, \"cls\": 0.5, \"reg\": 0.5, "
               "\"lr_scale\": 1}\n"
               "{\"epoch\": 2, \"step\": 2, \"loss\": 1.25, \"cls\": 1, \"reg\": 0.25, "
               "\"lr_scale\": 1}\n"
               "{\"epoch\": 2, \"val_avg_map\": 0.375, \"val_map_0.5\": 0.625}\n"
               "{\"epoch\": 3, \"step\": 3, \"lo");
    cr_assert_eq(sh(REPORT " --out r.html --run run" QUIET), 0);
    char *page = slurp("r.html");
    char *start = strstr(page, "id=\"report-data\">") + strlen("id=\"report-data\">");
    *strstr(start, "</script>") = 0;
    cJSON *data = cJSON_Parse(start), *tr = cJSON_GetObjectItem(data, "training");
    cr_assert(tr, "no training data in the page");
    char *got = cJSON_PrintUnformatted(tr);
    cr_expect_str_eq(got, "{\"source\":\"run/log.jsonl\",\"steps\":[1,2],\"series\":{\"loss\":"
                          "[2,1.25],\"classification\":[1.5,1],\"regression\":[0.5,0.25]},"
                          "\"lr\":{\"head\":[0.0005,0.001],\"backbone\":[0.0001,0.0002]},"
                          "\"val_epochs\":[1,2],"
                          "\"val\":{\"average mAP\":[0.25,0.375],\"mAP@0.5\":[0.5,0.625]}}");
    free(got);
    cJSON_Delete(data);
    free(page);
}
