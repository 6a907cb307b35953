/* pgnum: PostgreSQL's own arithmetic for the derived columns, reproduced bit for bit so
 * rollupd can compute them in C. Pure.
 *
 * - AVG(int) is numeric_div(sum, count): the quotient rounded half away from zero at the
 *   scale select_div_scale() picks (at least 16 significant digits), then either cast to
 *   integer (half away from zero again) or to float8 (its decimal text through strtod).
 * - PERCENTILE_CONT(q) interpolates in float8 between the values at 0-based ranks
 *   floor(q*(n-1)) and ceil(q*(n-1)); the float8 -> integer cast rounds half to even. */
#ifndef ROLLUPD_PGNUM_H
#define ROLLUPD_PGNUM_H

#include <stddef.h>
#include <stdint.h>

/* (sum::numeric / n)::bigint, n > 0. */
int64_t ru_pgnum_avg_int(int64_t sum, int64_t n);

/* (sum::numeric / n)::float8, n > 0. */
double ru_pgnum_avg_float8(int64_t sum, int64_t n);

/* The interpolation points of PERCENTILE_CONT(q) over n > 0 sorted values: 0-based ranks
 * *first <= *second and the weight of the second. */
void ru_pgnum_pct_ranks(double q, int64_t n, int64_t *first, int64_t *second, double *prop);

/* lo + prop * (hi - lo) in float8, as PostgreSQL's float8_lerp. */
double ru_pgnum_lerp(double lo, double hi, double prop);

/* float8 -> integer as PostgreSQL casts it: rint (half to even). */
int64_t ru_pgnum_round_even(double v);

/* Shortest text that reads back as exactly v (for COPY). Returns its length; buf holds
 * at least 32 bytes. */
size_t ru_pgnum_format_float8(double v, char *buf);

#endif
