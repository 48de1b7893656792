/* Unit tests: log_flood lets the first of a burst of repeated library lines
 * through and holds back the same line (digits aside) for 10 s, counting
 * what it held; other lines and other sources are not held. */
#include "core/log.h"
#include "tests/unit/check.h"

int main(void)
{
    int held = -1;
    CHECK(!log_flood("libmicrohttpd", "Server reached connection limit (1024)", &held));
    CHECK_INT(held, 0);
    for (int i = 0; i < 1919; i++)   /* the burst of the issue: 1,920 lines */
        CHECK(log_flood("libmicrohttpd", "Server reached connection limit (1025)", &held));
    CHECK(!log_flood("libmicrohttpd", "Error processing request", &held));   /* another line */
    CHECK_INT(held, 0);
    CHECK(!log_flood("librdkafka FAIL", "Server reached connection limit (1024)", &held));
    CHECK_INT(held, 0);   /* another source */
    CHECK_DONE();
}
