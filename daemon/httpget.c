/* httpget.c - see httpget.h. One easy handle per request; the caller's
 * thread. libcurl rather than a hand-written client: HTTPS, redirects of
 * nothing, timeouts and header parsing done right. */
#include "daemon/httpget.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/jbuf.h"
#include "core/strutil.h"

char *http_base_url(const config *cfg, char **errmsg)
{
    if (cfg->http_port == 0) {
        *errmsg = strdup("http.listen has port 0 (a free port picked at start): the daemon's "
                         "port is not known");
        return NULL;
    }
    const char *host = cfg->http_host;
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "") == 0)
        host = "127.0.0.1";
    char *url = str_printf("%s://%s:%d", cfg->http_tls_cert_file ? "https" : "http", host,
                           cfg->http_port);
    if (!url)
        *errmsg = strdup("out of memory");
    return url;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    jbuf *b = ud;
    jb_raw(b, p, size * n);
    return b->oom ? 0 : size * n;
}

/* "Name: value\r\n" of the headers kept */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    http_answer *a = ud;
    size_t len = size * n;
    static const struct {
        const char *name;
        size_t off;
    } keep[] = {
        {"X-Lambdad-Batch-Seq:", offsetof(http_answer, batch_seq)},
        {"X-Lambdad-Batch-At:", offsetof(http_answer, batch_at)},
        {"X-Lambdad-Live-Events:", offsetof(http_answer, live_events)},
    };
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        size_t nl = strlen(keep[i].name);
        if (len <= nl || strncasecmp(p, keep[i].name, nl) != 0)
            continue;
        const char *v = p + nl, *end = p + len;
        while (v < end && *v == ' ')
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        char **slot = (char **)((char *)a + keep[i].off);
        free(*slot);
        *slot = strndup(v, (size_t)(end - v));
    }
    return len;
}

int http_get(const config *cfg, const char *url, http_answer *a, char **errmsg)
{
    *a = (http_answer){0};
    CURL *c = curl_easy_init();
    if (!c) {
        *errmsg = strdup("cannot set up an HTTP client");
        return -ENOMEM;
    }
    jbuf body;
    jb_init(&body);
    struct curl_slist *hdrs = NULL;
    char *auth = cfg->http_auth_token ? str_printf("Authorization: Bearer %s", cfg->http_auth_token)
                                      : NULL;
    if (auth)
        hdrs = curl_slist_append(hdrs, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    /* the daemon abandons a query past its own budget; this only bounds a hang */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)cfg->http_query_timeout_ms + 60000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    if (hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (cfg->http_tls_cert_file) {
        /* the daemon's own certificate is the one to trust (pinned), so its
         * names need not include the address it is reached at */
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->http_tls_cert_file);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode rc = curl_easy_perform(c);
    int r = 0;
    if (rc != CURLE_OK) {
        *errmsg = str_printf("%s", body.oom ? "out of memory" : curl_easy_strerror(rc));
        r = rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : body.oom ? -ENOMEM : -ECONNREFUSED;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
        a->body = jb_take(&body, &a->len);
        if (!a->body) {
            a->body = strdup("");   /* an empty body */
            if (!a->body) {
                *errmsg = strdup("out of memory");
                r = -ENOMEM;
            }
        }
    }
    if (r < 0)
        http_answer_clear(a);
    jb_free(&body);
    curl_slist_free_all(hdrs);
    free(auth);
    curl_easy_cleanup(c);
    return r;
}

void http_answer_clear(http_answer *a)
{
    free(a->body);
    free(a->batch_seq);
    free(a->batch_at);
    free(a->live_events);
    *a = (http_answer){0};
}

char *http_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *copy = e ? strdup(e) : NULL;   /* ours to free() */
    curl_free(e);
    return copy;
}
