/* Unit tests for pgnum. The expected values come from PostgreSQL 15.20 (the queries are
 * next to each table); nothing here needs a server. */
#include <criterion/criterion.h>

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/pgnum.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Bitwise equality: tells 0.0 from -0.0 and needs no tolerance. */
static int same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* ---- AVG: numeric division ---- */

struct avg_case {
    int64_t sum, n;
    int64_t avg_int;  /* (sum::numeric / n)::bigint */
    double avg_float; /* (sum::numeric / n)::float8 */
};

/* SELECT s, n, (s::numeric / n)::bigint, (s::numeric / n)::float8, s::numeric / n
 * FROM (VALUES (0::bigint, 1::bigint), (0, 7), (0, 9223372036854775807), (5, 2), ...)
 *      AS t(s, n);
 * The comment on each row is the numeric quotient, at the scale select_div_scale() picks. */
static const struct avg_case avg_cases[] = {
    {0, 1, 0, 0},                                      /* 0.00000000000000000000 */
    {0, 7, 0, 0},                                      /* 0.00000000000000000000 */
    {0, INT64_MAX, 0, 0},                              /* 0.000000000000000000000000000000000000 */
    {5, 2, 3, 2.5},                                    /* 2.5000000000000000 */
    {-5, 2, -3, -2.5},                                 /* -2.5000000000000000 */
    {7, 2, 4, 3.5},                                    /* 3.5000000000000000 */
    {-7, 2, -4, -3.5},                                 /* -3.5000000000000000 */
    {1, 3, 0, 0.3333333333333333},                     /* 0.33333333333333333333 */
    {2, 3, 1, 0.6666666666666666},                     /* 0.66666666666666666667 */
    {-1, 3, 0, -0.3333333333333333},                   /* -0.33333333333333333333 */
    {-2, 3, -1, -0.6666666666666666},                  /* -0.66666666666666666667 */
    {1, 7, 0, 0.14285714285714285},                    /* 0.14285714285714285714 */
    {10, 4, 3, 2.5},                                   /* 2.5000000000000000 */
    {-10, 4, -3, -2.5},                                /* -2.5000000000000000 */
    {1234567, 1000, 1235, 1234.567},                   /* 1234.5670000000000000 */
    {INT64_MIN, 1, INT64_MIN, -9.223372036854776e+18}, /* -9223372036854775808 */
    {INT64_MAX, 1, INT64_MAX, 9.223372036854776e+18},  /* 9223372036854775807 */
    {INT64_MIN, 2, -4611686018427387904, -4.611686018427388e+18},  /* -4611686018427387904 */
    {INT64_MAX, 2, 4611686018427387904, 4.611686018427388e+18},    /* 4611686018427387904 */
    {INT64_MIN, 3, -3074457345618258603, -3.0744573456182584e+18}, /* -3074457345618258603 */
    {INT64_MAX, 3, 3074457345618258602, 3.0744573456182584e+18},   /* 3074457345618258602 */
    {INT64_MAX, INT64_MAX, 1, 1},                                  /* 1.00000000000000000000 */
    {INT64_MIN, INT64_MAX, -1, -1},                                /* -1.00000000000000000011 */
    {1, INT64_MAX, 0, 1.0842021724855044e-19},   /* 0.000000000000000000108420217248550443 */
    {-1, INT64_MAX, 0, -1.0842021724855044e-19}, /* -0.000000000000000000108420217248550443 */
    {INT64_MAX, 1000000007, 9223371972, 9223371972.291172},             /* 9223371972.29117200 */
    {INT64_MIN, 999999999999, -9223372, -9223372.036864},               /* -9223372.036863999180 */
    {123456789012345678, 7, 17636684144620811, 1.7636684144620812e+16}, /* 17636684144620811 */
    {-123456789012345678, 7, -17636684144620811, -1.7636684144620812e+16}, /* -17636684144620811 */
    {999999999999999999, 3, 333333333333333333, 3.333333333333333e+17},    /* 333333333333333333 */
    {9000000000000000000, 3, 3000000000000000000, 3e+18},                  /* 3000000000000000000 */
    {9000000000000000001, 2, 4500000000000000001, 4.5e+18},                /* 4500000000000000001 */
    {-9000000000000000001, 2, -4500000000000000001, -4.5e+18},         /* -4500000000000000001 */
    {1000000000000000000, 1, 1000000000000000000, 1e+18},              /* 1000000000000000000 */
    {2000000000000000001, 2, 1000000000000000001, 1e+18},              /* 1000000000000000001 */
    {12345678901234567, 10, 1234567890123457, 1.2345678901234568e+15}, /* 1234567890123456.7000 */
    {98765432109876543, 7, 14109347444268078, 1.4109347444268078e+16}, /* 14109347444268078 */
    {6917529027641081854, 4611686018427387903, 2, 1.5},                /* 1.5000000000000000 */
    {-6917529027641081854, 4611686018427387903, -2, -1.5},             /* -1.5000000000000000 */
    {5000000000000000000, 4000000000000000001, 1, 1.25},               /* 1.2500000000000000 */
    {3, 1000000000000, 0, 3e-12},                             /* 0.0000000000030000000000000000 */
    {-987654321, 1000000000000, 0, -0.000987654321},          /* -0.00098765432100000000 */
    {500000000000, 1000000000000, 1, 0.5},                    /* 0.50000000000000000000 */
    {-1500000000001, 1000000000000, -2, -1.500000000001},     /* -1.50000000000100000000 */
    {86400000000, 3600, 24000000, 24000000},                  /* 24000000.000000000000 */
    {123456789012345, 98765, 1250005458, 1250005457.5238698}, /* 1250005457.52386979 */
};

Test(pgnum, avg_int)
{
    for (size_t i = 0; i < N_ELEMS(avg_cases); i++) {
        const struct avg_case *c = &avg_cases[i];
        int64_t got = ru_pgnum_avg_int(c->sum, c->n);
        cr_expect_eq(got, c->avg_int,
                     "avg_int(%" PRId64 ", %" PRId64 ") = %" PRId64 ", PostgreSQL %" PRId64, c->sum,
                     c->n, got, c->avg_int);
    }
}

Test(pgnum, avg_float8)
{
    for (size_t i = 0; i < N_ELEMS(avg_cases); i++) {
        const struct avg_case *c = &avg_cases[i];
        double got = ru_pgnum_avg_float8(c->sum, c->n);
        cr_expect(same_double(got, c->avg_float),
                  "avg_float8(%" PRId64 ", %" PRId64 ") = %.17g, PostgreSQL %.17g", c->sum, c->n,
                  got, c->avg_float);
    }
}

/* The quotient is rounded at its scale before the cast rounds it again.
 * SELECT s::numeric / n, (s::numeric / n)::bigint FROM (VALUES ...) AS t(s, n); */
Test(pgnum, avg_int_double_rounding)
{
    /* 1.49999999999999999 is 1.5000000000000000 at scale 16, so 2 */
    cr_expect_eq(ru_pgnum_avg_int(149999999999999999, 100000000000000000), 2);
    cr_expect_eq(ru_pgnum_avg_int(-149999999999999999, 100000000000000000), -2);
    /* 1.4999999999999999 fits scale 20 as 1.49999999999999990000, so 1 */
    cr_expect_eq(ru_pgnum_avg_int(14999999999999999, 10000000000000000), 1);
    /* 1.49999999999999999989... at scale 16 */
    cr_expect_eq(ru_pgnum_avg_int(6917529027641081854, 4611686018427387903), 2);
}

/* ---- PERCENTILE_CONT ---- */

struct pct_case {
    double q;
    int64_t n;
    int64_t first, second;
    double prop;
    double value; /* percentile_cont(q) over the values 0 .. n-1 */
};

/* SELECT q, n, floor(q * (n - 1)), ceil(q * (n - 1)), q * (n - 1) - floor(q * (n - 1)),
 *        (SELECT percentile_cont(q) WITHIN GROUP (ORDER BY i::float8)
 *         FROM generate_series(0, n - 1) AS i)
 * FROM unnest(ARRAY[0.5, 0.95, 0.99]::float8[]) AS q,
 *      unnest(ARRAY[1, 2, 3, 20, 21, 101, 1000001]::bigint[]) AS n ORDER BY q, n; */
static const struct pct_case pct_cases[] = {
    {0.5, 1, 0, 0, 0, 0},
    {0.5, 2, 0, 1, 0.5, 0.5},
    {0.5, 3, 1, 1, 0, 1},
    {0.5, 20, 9, 10, 0.5, 9.5},
    {0.5, 21, 10, 10, 0, 10},
    {0.5, 101, 50, 50, 0, 50},
    {0.5, 1000001, 500000, 500000, 0, 500000},
    {0.95, 1, 0, 0, 0, 0},
    {0.95, 2, 0, 1, 0.95, 0.95},
    {0.95, 3, 1, 2, 0.8999999999999999, 1.9},
    {0.95, 20, 18, 19, 0.05000000000000071, 18.05},
    {0.95, 21, 19, 19, 0, 19},
    {0.95, 101, 95, 95, 0, 95},
    {0.95, 1000001, 950000, 950000, 0, 950000},
    {0.99, 1, 0, 0, 0, 0},
    {0.99, 2, 0, 1, 0.99, 0.99},
    {0.99, 3, 1, 2, 0.98, 1.98},
    {0.99, 20, 18, 19, 0.8099999999999987, 18.81},
    {0.99, 21, 19, 20, 0.8000000000000007, 19.8},
    {0.99, 101, 99, 99, 0, 99},
    {0.99, 1000001, 990000, 990000, 0, 990000},
};

Test(pgnum, pct_ranks)
{
    for (size_t i = 0; i < N_ELEMS(pct_cases); i++) {
        const struct pct_case *c = &pct_cases[i];
        int64_t first = -1, second = -1;
        double prop = -1;
        ru_pgnum_pct_ranks(c->q, c->n, &first, &second, &prop);
        cr_expect_eq(first, c->first, "q %g n %" PRId64 ": first %" PRId64, c->q, c->n, first);
        cr_expect_eq(second, c->second, "q %g n %" PRId64 ": second %" PRId64, c->q, c->n, second);
        cr_expect(same_double(prop, c->prop), "q %g n %" PRId64 ": prop %.17g, PostgreSQL %.17g",
                  c->q, c->n, prop, c->prop);
        /* the value at rank r is r; equal ranks take the row as is */
        double v =
            first == second ? (double)first : ru_pgnum_lerp((double)first, (double)second, prop);
        cr_expect(same_double(v, c->value), "q %g n %" PRId64 ": %.17g, PostgreSQL %.17g", c->q,
                  c->n, v, c->value);
    }
}

/* Two values: proportion q, so percentile_cont is float8_lerp(lo, hi, q). The first six
 * differ in the last bit when the product and the sum are fused into one FMA.
 * SELECT lo, hi, q, (SELECT percentile_cont(q) WITHIN GROUP (ORDER BY v)
 *                    FROM (VALUES (lo), (hi)) AS x(v))
 * FROM (VALUES (38782.586::float8, 47356.683::float8, 0.999::float8), ...) AS t(lo, hi, q); */
static const struct {
    double lo, hi, q, value;
} lerp_cases[] = {
    {38782.586, 47356.683, 0.999, 47348.108903},
    {9053.865, 11023.585, 0.999, 11021.615279999998},
    {62792.178, 64327.924, 0.95, 64251.1367},
    {19460.53, 21923.642, 0.95, 21800.4864},
    {9947.145, 16280.367, 0.95, 15963.7059},
    {966.186, 6560.387, 0.9, 6000.966899999999},
    {0.1, 0.7, 0.5, 0.4},
    {-3.5, 2.25, 0.99, 2.1925},
    {1, 3, 0.25, 1.5},
};

Test(pgnum, lerp)
{
    for (size_t i = 0; i < N_ELEMS(lerp_cases); i++) {
        double v = ru_pgnum_lerp(lerp_cases[i].lo, lerp_cases[i].hi, lerp_cases[i].q);
        cr_expect(same_double(v, lerp_cases[i].value),
                  "lerp(%.17g, %.17g, %.17g) = %.17g, "
                  "PostgreSQL %.17g",
                  lerp_cases[i].lo, lerp_cases[i].hi, lerp_cases[i].q, v, lerp_cases[i].value);
    }
}

/* Five durations, end to end: ranks, lerp, then the cast to bigint.
 * SELECT q, percentile_cont(q) WITHIN GROUP (ORDER BY v),
 *        percentile_cont(q) WITHIN GROUP (ORDER BY v)::bigint
 * FROM unnest(ARRAY[0.1, 0.2, 0.7, 12.5, 12.75]::float8[]) v,
 *      unnest(ARRAY[0.5, 0.95, 0.99]::float8[]) q GROUP BY q ORDER BY q; */
Test(pgnum, percentile_durations)
{
    static const double sorted[] = {0.1, 0.2, 0.7, 12.5, 12.75};
    static const struct {
        double q, value;
        int64_t rounded;
    } cases[] = {{0.5, 0.7, 1}, {0.95, 12.7, 13}, {0.99, 12.74, 13}};
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        int64_t first, second;
        double prop;
        ru_pgnum_pct_ranks(cases[i].q, 5, &first, &second, &prop);
        double v =
            first == second ? sorted[first] : ru_pgnum_lerp(sorted[first], sorted[second], prop);
        cr_expect(same_double(v, cases[i].value), "q %g: %.17g, PostgreSQL %.17g", cases[i].q, v,
                  cases[i].value);
        cr_expect_eq(ru_pgnum_round_even(v), cases[i].rounded, "q %g", cases[i].q);
    }
}

/* ---- float8 -> bigint ---- */

/* SELECT v, v::bigint FROM unnest(ARRAY[0.5, 1.5, 2.5, ...]::float8[]) AS v;
 * and '-0'::float8::bigint = 0. */
static const struct {
    double v;
    int64_t rounded;
} round_cases[] = {
    {0.5, 0},
    {1.5, 2},
    {2.5, 2},
    {3.5, 4},
    {-0.5, 0},
    {-1.5, -2},
    {-2.5, -2},
    {-3.5, -4},
    {2.4999999999999996, 2},
    {2.5000000000000004, 3},
    {0.49999999999999994, 0},
    {-0.49999999999999994, 0},
    {1234567.5, 1234568},
    {1234568.5, 1234568},
    {-7.5, -8},
    {4.5035996273704955e+15, 4503599627370496},
    {4.503599627370496e+15, 4503599627370496},
    {9.007199254740992e+15, 9007199254740992},
    {-1e+18, -1000000000000000000},
    {0, 0},
    {-0.0, 0},
    {99.99, 100},
    {-99.01, -99},
};

Test(pgnum, round_even)
{
    for (size_t i = 0; i < N_ELEMS(round_cases); i++) {
        int64_t got = ru_pgnum_round_even(round_cases[i].v);
        cr_expect_eq(got, round_cases[i].rounded,
                     "round_even(%.17g) = %" PRId64 ", PostgreSQL %" PRId64, round_cases[i].v, got,
                     round_cases[i].rounded);
    }
}

/* ---- float8 text ---- */

static void expect_format(double v, const char *want)
{
    char buf[32];
    size_t len = ru_pgnum_format_float8(v, buf);
    cr_expect_str_eq(buf, want, "format(%.17g)", v);
    cr_expect_eq(len, strlen(want), "format(%.17g) length", v);
}

Test(pgnum, format_float8)
{
    expect_format(0.0, "0");
    expect_format(-0.0, "-0");
    expect_format(0.1, "0.1");
    expect_format(2.5, "2.5");
    expect_format(-1234.567, "-1234.567");
    expect_format(1.0 / 3, "0.3333333333333333");
    expect_format(0.1 + 0.2, "0.30000000000000004");
    expect_format(1e20, "1e+20");
    expect_format(123456789012345678.0, "1.2345678901234568e+17");
    expect_format(4.9406564584124654e-324, "4.94065645841247e-324");
    expect_format(-DBL_MAX, "-1.7976931348623157e+308");
}

/* Every AVG result and a spread of bit patterns read back as the same double. */
Test(pgnum, format_float8_round_trip)
{
    char buf[32];
    for (size_t i = 0; i < N_ELEMS(avg_cases); i++) {
        ru_pgnum_format_float8(avg_cases[i].avg_float, buf);
        cr_expect(same_double(strtod(buf, NULL), avg_cases[i].avg_float), "%s", buf);
    }
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (!isfinite(v))
            continue;
        size_t len = ru_pgnum_format_float8(v, buf);
        cr_assert_lt(len, sizeof buf);
        cr_assert(same_double(strtod(buf, NULL), v), "%.17g printed as %s", v, buf);
    }
}
