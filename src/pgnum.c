#include "rollupd/pgnum.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* numeric.c: NBASE 10000 (DEC_DIGITS 4 decimal digits per base digit), and a quotient
 * gets at least NUMERIC_MIN_SIG_DIGITS significant digits. */
#define NBASE          10000
#define DEC_DIGITS     4
#define MIN_SIG_DIGITS 16
#define MAX_DIV_SCALE  36 /* 16 - (0 - 4 - 1) * 4: an int64 has weight at most 4 */
#define QUOT_TEXT_MAX  (1 + 20 + 1 + MAX_DIV_SCALE + 1)

/* A rounded quotient |sum| / n: integer part, then scale fractional decimal digits. */
struct quot {
    bool neg;
    uint64_t ipart;
    int scale;
    char frac[MAX_DIV_SCALE];
};

/* Weight and leading digit of v in base NBASE; v == 0 has weight 0 and digit 0. */
static void nbase_lead(uint64_t v, int *weight, uint64_t *first)
{
    *weight = 0;
    while (v >= NBASE) {
        v /= NBASE;
        (*weight)++;
    }
    *first = v;
}

/* select_div_scale() for two integers (display scale 0): the estimated weight of the
 * quotient from the inputs' weights, one less when the dividend's leading digit is not
 * above the divisor's. */
static int div_scale(uint64_t a, uint64_t b)
{
    int wa, wb;
    uint64_t fa, fb;
    nbase_lead(a, &wa, &fa);
    nbase_lead(b, &wb, &fb);
    int qweight = wa - wb;
    if (fa <= fb)
        qweight--;
    int rscale = MIN_SIG_DIGITS - qweight * DEC_DIGITS;
    return rscale < 0 ? 0 : rscale;
}

/* numeric_div(sum, n): the exact quotient rounded half away from zero at div_scale()
 * digits, by long division. */
static void quot_div(int64_t sum, int64_t n, struct quot *q)
{
    uint64_t a = sum < 0 ? 0 - (uint64_t)sum : (uint64_t)sum;
    uint64_t b = (uint64_t)n;
    q->neg = sum < 0;
    q->scale = div_scale(a, b);
    q->ipart = a / b;
    uint64_t r = a % b;
    for (int i = 0; i < q->scale; i++) {
        unsigned __int128 t = (unsigned __int128)r * 10;
        q->frac[i] = (char)('0' + (int)(t / b));
        r = (uint64_t)(t % b);
    }
    /* the next digit decides: 5 or more is at least half a unit */
    if ((unsigned __int128)r * 10 / b < 5)
        return;
    int i = q->scale - 1;
    while (i >= 0 && q->frac[i] == '9')
        q->frac[i--] = '0';
    if (i >= 0)
        q->frac[i]++;
    else
        q->ipart++; /* n == 1 leaves no remainder, so this cannot pass 2^63 */
}

int64_t ru_pgnum_avg_int(int64_t sum, int64_t n)
{
    struct quot q;
    quot_div(sum, n, &q);
    /* numericvar_to_int64 rounds the already rounded quotient half away from zero */
    uint64_t m = q.ipart + (q.scale > 0 && q.frac[0] >= '5');
    if (!q.neg)
        return (int64_t)m;
    return m > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)m;
}

double ru_pgnum_avg_float8(int64_t sum, int64_t n)
{
    /* numeric_float8 is float8in(numeric_out(x)): all scale digits, then strtod */
    struct quot q;
    char text[QUOT_TEXT_MAX];
    quot_div(sum, n, &q);
    int len = snprintf(text, sizeof text, "%s%llu", q.neg ? "-" : "", (unsigned long long)q.ipart);
    if (q.scale > 0) {
        text[len++] = '.';
        memcpy(text + len, q.frac, (size_t)q.scale);
        len += q.scale;
    }
    text[len] = '\0';
    return strtod(text, NULL);
}

void ru_pgnum_pct_ranks(double q, int64_t n, int64_t *first, int64_t *second, double *prop)
{
    /* percentile_cont_final_common; volatile keeps the compiler from fusing the product
     * into an FMA with the subtraction (GCC ignores #pragma STDC FP_CONTRACT) */
    volatile double pos = q * (double)(n - 1);
    *first = (int64_t)floor(pos);
    *second = (int64_t)ceil(pos);
    *prop = pos - (double)*first;
}

double ru_pgnum_lerp(double lo, double hi, double prop)
{
    /* float8_lerp; the product is rounded on its own, as there (no FMA) */
    volatile double step = prop * (hi - lo);
    return lo + step;
}

int64_t ru_pgnum_round_even(double v)
{
    /* dtoi8: rint in the default rounding mode; PostgreSQL rejects what does not fit,
     * here it saturates */
    double r = rint(v);
    if (isnan(r))
        return 0;
    if (r >= 9223372036854775808.0)
        return INT64_MAX;
    if (r < -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)r;
}

size_t ru_pgnum_format_float8(double v, char *buf)
{
    /* 17 significant digits always read back; fewer often do */
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return (size_t)len;
}
