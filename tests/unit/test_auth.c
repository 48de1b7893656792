/* test_auth.c - bearer-token checks (serving/auth.c) and the per-address
 * connection counts (serving/conns.c): exact verdicts for every case,
 * including the ones a sloppy parser gets wrong (prefix tokens, another
 * scheme, tokens that differ only in length or in their last byte). */
#include "serving/auth.h"
#include "serving/conns.h"
#include "tests/unit/check.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config/config.h"

static void test_equal(void)
{
    CHECK(auth_equal("abc", 3, "abc", 3));
    CHECK(!auth_equal("abc", 3, "abd", 3));       /* last byte */
    CHECK(!auth_equal("abc", 3, "xbc", 3));       /* first byte */
    CHECK(!auth_equal("abc", 3, "ab", 2));        /* a prefix */
    CHECK(!auth_equal("abc", 3, "abcd", 4));      /* longer */
    CHECK(!auth_equal("abc", 3, "abcabc", 6));    /* the cycle of a shorter b must not match */
    CHECK(!auth_equal("aaaa", 4, "aa", 2));
    CHECK(!auth_equal("abc", 3, "", 0));
    CHECK(auth_equal("", 0, "", 0));
    CHECK(!auth_equal("a\0b", 3, "a\0c", 3));     /* bytes, not C strings */
    CHECK(!auth_equal("\xff", 1, "\x7f", 1));
}

static void test_header(void)
{
    const char *tok = "s3cr3t-T0ken_~+/=";
    CHECK(auth_header_ok("Bearer s3cr3t-T0ken_~+/=", tok));
    CHECK(auth_header_ok("bearer s3cr3t-T0ken_~+/=", tok));     /* scheme is case-insensitive */
    CHECK(auth_header_ok("BEARER   s3cr3t-T0ken_~+/=  ", tok));  /* extra spaces */
    CHECK(!auth_header_ok("Bearer S3CR3T-T0KEN_~+/=", tok));     /* the token is not */
    CHECK(!auth_header_ok("Bearer s3cr3t-T0ken_~+/", tok));
    CHECK(!auth_header_ok("Bearer s3cr3t-T0ken_~+/==", tok));
    CHECK(!auth_header_ok("Bearers3cr3t-T0ken_~+/=", tok));
    CHECK(!auth_header_ok("Basic czNjcjN0", tok));
    CHECK(!auth_header_ok("s3cr3t-T0ken_~+/=", tok));
    CHECK(!auth_header_ok("Bearer", tok));
    CHECK(!auth_header_ok("Bearer ", tok));
    CHECK(!auth_header_ok("", tok));
    CHECK(!auth_header_ok(NULL, tok));
    CHECK(!auth_header_ok("Bearer x", NULL));
}

static void test_required(void)
{
    CHECK(auth_required("/v1/admin/recompute", CFG_PROTECT_ADMIN));
    CHECK(auth_required("/v1/admin", CFG_PROTECT_ADMIN));
    CHECK(auth_required("/v1/admin/", CFG_PROTECT_ADMIN));
    CHECK(auth_required("/v1/admin/future/route", CFG_PROTECT_ADMIN));
    CHECK(!auth_required("/v1/administrator", CFG_PROTECT_ADMIN));
    CHECK(!auth_required("/v1/views", CFG_PROTECT_ADMIN));
    CHECK(!auth_required("/metrics", CFG_PROTECT_ADMIN));
    CHECK(!auth_required("/healthz", CFG_PROTECT_ADMIN));
    CHECK(auth_required("/v1/admin/recompute", CFG_PROTECT_ALL));
    CHECK(auth_required("/v1/views", CFG_PROTECT_ALL));
    CHECK(auth_required("/v1/views/x/query", CFG_PROTECT_ALL));
    CHECK(auth_required("/metrics", CFG_PROTECT_ALL));
    CHECK(auth_required("/nope", CFG_PROTECT_ALL));
    CHECK(auth_required("/healthz/x", CFG_PROTECT_ALL));
    CHECK(!auth_required("/healthz", CFG_PROTECT_ALL));
    CHECK(!auth_required("/readyz", CFG_PROTECT_ALL));
    /* the web UI's static assets: the page must load to ask for the token */
    CHECK(!auth_required("/", CFG_PROTECT_ALL));
    CHECK(!auth_required("/ui/app.js", CFG_PROTECT_ALL));
    CHECK(auth_required("/ui", CFG_PROTECT_ALL));
    CHECK(auth_required("/grafana/query", CFG_PROTECT_ALL));
    CHECK(auth_required("/v1/views/x/values/d", CFG_PROTECT_ALL));
}

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return sa;
}

static void test_conns(void)
{
    conns *c = NULL;
    CHECK_INT(conns_new(4, 2, &c), 0);
    if (!c)
        return;
    struct sockaddr_in a = v4("127.0.0.2"), b = v4("127.0.0.3");
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:127.0.0.2", &a6.sin6_addr);   /* the same client as a */
    conn_slot *s[8] = {0};
    CHECK_INT(conns_open(c, (struct sockaddr *)&a, &s[0]), CONN_OK);
    CHECK_INT(conns_open(c, (struct sockaddr *)&a, &s[1]), CONN_OK);
    CHECK_INT(conns_open(c, (struct sockaddr *)&a6, &s[2]), CONN_OVER_IP);
    CHECK_INT(conns_verdict(s[2]), CONN_OVER_IP);
    CHECK_INT(conns_verdict(s[0]), CONN_OK);
    CHECK_INT(conns_verdict(NULL), CONN_OK);
    CHECK_INT(conns_open(c, (struct sockaddr *)&b, &s[3]), CONN_OK);
    CHECK_INT(conns_open(c, NULL, &s[4]), CONN_OVER_TOTAL);   /* the 5th of 4 */
    CHECK_INT(conns_count(c), 5);
    conns_close(c, s[2]);
    conns_close(c, s[4]);
    conns_close(c, s[0]);
    CHECK_INT(conns_count(c), 2);
    /* a's count went down: one more from a is fine, the next is not */
    CHECK_INT(conns_open(c, (struct sockaddr *)&a, &s[5]), CONN_OK);
    CHECK_INT(conns_open(c, (struct sockaddr *)&a, &s[6]), CONN_OVER_IP);
    conns_close(c, s[1]);
    conns_close(c, s[3]);
    conns_close(c, s[5]);
    conns_close(c, s[6]);
    conns_close(c, NULL);
    CHECK_INT(conns_count(c), 0);
    conns_free(c);
    conns_free(NULL);
}

int main(void)
{
    test_equal();
    test_header();
    test_required();
    test_conns();
    CHECK_DONE();
}
