/* Unit tests: cell arithmetic and merge laws. */
#include "core/cell.h"
#include "tests/unit/check.h"

#include <stdint.h>

static cell of(const double *v, int n)
{
    cell c;
    cell_init(&c);
    for (int i = 0; i < n; i++)
        cell_add(&c, v[i]);
    return c;
}

int main(void)
{
    cell c;
    cell_init(&c);
    int64_t s;
    CHECK_INT(c.n, 0);
    CHECK(cell_sum_is_int(&c, &s));
    CHECK_INT(s, 0);

    const double vals[] = {5, -3, 12.5, 1e6, 0.25};
    c = of(vals, 5);
    CHECK_INT(c.n, 5);
    CHECK_DBL(c.min, -3);
    CHECK_DBL(c.max, 1e6);
    CHECK_DBL(cell_sum(&c), 1000014.75);
    CHECK(!cell_sum_is_int(&c, &s));

    /* merge equals adding everything to one cell, in either order */
    cell a = of(vals, 2), b = of(vals + 2, 3), ab = a, ba = b;
    cell_merge(&ab, &b);
    cell_merge(&ba, &a);
    CHECK_INT(ab.n, 5);
    CHECK_DBL(cell_sum(&ab), cell_sum(&c));
    CHECK_DBL(cell_sum(&ba), cell_sum(&c));
    CHECK_DBL(ab.min, -3);
    CHECK_DBL(ba.max, 1e6);

    /* merging an empty cell changes nothing; into an empty cell copies */
    cell e;
    cell_init(&e);
    cell x = a;
    cell_merge(&x, &e);
    CHECK_INT(x.n, 2);
    CHECK_DBL(x.min, -3);
    cell_merge(&e, &a);
    CHECK_DBL(e.min, -3);
    CHECK_DBL(e.max, 5);

    /* large integer sums stay exact beyond double precision */
    cell big;
    cell_init(&big);
    cell_add(&big, 9007199254740991.0);   /* 2^53 - 1 */
    cell_add(&big, 9007199254740991.0);
    cell_add(&big, 1);
    CHECK(cell_sum_is_int(&big, &s));
    CHECK_INT(s, 18014398509481983LL);

    /* int64 overflow spills into the double sum instead of wrapping */
    cell ov;
    cell_init(&ov);
    ov.n = 1;
    ov.isum = INT64_MAX;
    cell one;
    cell_init(&one);
    cell_add(&one, 1);
    cell_merge(&ov, &one);
    CHECK_INT(ov.isum, INT64_MAX);
    CHECK_DBL(ov.fsum, 1);

    /* counts */
    cell k;
    cell_init(&k);
    for (int i = 0; i < 1000; i++)
        cell_count(&k);
    CHECK_INT(k.n, 1000);
    CHECK_DONE();
}
