/* Unit tests for src/libcfg.c: the wide-literal scan and the @include check. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rollupd/libcfg.h"

static char dir[64];

static void setup(void)
{
    ru_strlcpy(dir, "/tmp/ru-libcfg-XXXXXX", sizeof(dir));
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fputs(text, fp);
    fclose(fp);
}

TestSuite(libcfg, .init = setup, .fini = teardown);

Test(libcfg, wide_literal_takes_its_true_value)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/a.conf", dir);
    write_file(path, "redis: {\n  claim_idle_ms = 5000000000;\n  count = 7;\n"
                     "  block_ms =\n    -3000000000;\n  big = 99999999999999999999;\n};\n");
    struct ru_libcfg_wide w;
    memset(&w, 0, sizeof(w));
    int64_t v = 705032704; /* what libconfig 1.5 reads */
    cr_assert_eq(ru_libcfg_wide_value(&w, path, "claim_idle_ms", 2, &v), 0);
    cr_assert_eq(v, 5000000000LL);
    v = 7;
    cr_assert_eq(ru_libcfg_wide_value(&w, path, "count", 3, &v), 0);
    cr_assert_eq(v, 7, "a 32-bit literal is left alone");
    v = 0;
    cr_assert_eq(ru_libcfg_wide_value(&w, path, "block_ms", 5, &v), 0, "the literal's line");
    cr_assert_eq(v, -3000000000LL);
    v = 1;
    cr_assert_eq(ru_libcfg_wide_value(&w, path, "big", 6, &v), -1);
    cr_assert_eq(v, 1, "untouched beyond int64");
    cr_assert_eq(w.nscanned, 1, "each file is scanned once");
    ru_libcfg_wide_deinit(&w);
    ru_libcfg_wide_deinit(&w);
}

Test(libcfg, include_of_a_directory_is_refused_naming_the_line)
{
    char path[128], inc[128], sub[128];
    snprintf(path, sizeof(path), "%s/a.conf", dir);
    snprintf(inc, sizeof(inc), "%s/b.conf", dir);
    snprintf(sub, sizeof(sub), "%s/d", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    char text[512];
    snprintf(text, sizeof(text), "# one\n@include \"%s\"\n", inc);
    write_file(path, text);
    snprintf(text, sizeof(text), "log: { level = \"info\"; };\n\n@include \"%s\"\n", sub);
    write_file(inc, text);

    struct ru_libcfg_include_err e;
    cr_assert_eq(ru_libcfg_check_includes(path, &e), -1);
    cr_assert_str_eq(e.file, inc);
    cr_assert_eq(e.line, 3);
    cr_assert_not_null(strstr(e.why, "not a regular file"), "%s", e.why);

    write_file(inc, "log: { level = \"info\"; };\n");
    cr_assert_eq(ru_libcfg_check_includes(path, &e), 0);
    snprintf(text, sizeof(text), "%s/missing.conf", dir);
    cr_assert_eq(ru_libcfg_check_includes(text, &e), 0, "left to libconfig");
}
