/* client.c - see client.h. One easy handle per request. libcurl rather
 * than a hand-written client: HTTPS, timeouts and header parsing done
 * right. */
#include "daemon/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/jbuf.h"
#include "core/strutil.h"

struct client {
    const config *cfg;
    char *base;                  /* http://127.0.0.1:8080 */
};

int client_new(const config *cfg, client **out, char **errmsg)
{
    *out = NULL;
    if (cfg->http_port == 0) {
        *errmsg = strdup("http.listen has port 0 (a free port picked at start): the daemon's "
                         "port is not known");
        return -EINVAL;
    }
    const char *host = cfg->http_host;
    if (strcmp(host, "0.0.0.0") == 0 || host[0] == '\0')
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    client *c = calloc(1, sizeof(*c));
    if (c) {
        c->cfg = cfg;
        c->base = str_printf(strchr(host, ':') ? "%s://[%s]:%d" : "%s://%s:%d",
                             cfg->http_tls_cert_file ? "https" : "http", host, cfg->http_port);
    }
    if (!c || !c->base) {
        client_free(c);
        *errmsg = strdup("out of memory");
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

void client_free(client *c)
{
    if (!c)
        return;
    free(c->base);
    free(c);
}

const char *client_base(const client *c)
{
    return c->base;
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
    client_answer *a = ud;
    size_t len = size * n;
    static const struct {
        const char *name;
        size_t off;
    } keep[] = {
        {"X-Lambdad-Batch-Seq:", offsetof(client_answer, batch_seq)},
        {"X-Lambdad-Batch-At:", offsetof(client_answer, batch_at)},
        {"X-Lambdad-Live-Events:", offsetof(client_answer, live_events)},
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

typedef struct {
    FILE *f;
    uint64_t size;
    void (*progress)(void *ud, uint64_t sent, uint64_t total);
    void *ud;
} upload;

static int on_upload(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                     curl_off_t ulnow)
{
    upload *up = ud;
    up->progress(up->ud, (uint64_t)ulnow, (uint64_t)ultotal);
    return 0;
}

/* One request: a GET, or with up a POST of its file. */
static int request(client *c, const char *path, upload *up, client_answer *a, char **errmsg)
{
    *a = (client_answer){0};
    CURL *h = curl_easy_init();
    char *url = str_printf("%s%s", c->base, path);
    if (!h || !url) {
        curl_easy_cleanup(h);
        free(url);
        *errmsg = strdup(h ? "out of memory" : "cannot set up an HTTP client");
        return -ENOMEM;
    }
    if (c->cfg->http_auth_token) {
        /* a single method: sent with the first request, not after a 401 */
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, c->cfg->http_auth_token);
    }
    struct curl_slist type = {.data = (char *)"Content-Type: application/octet-stream"};
    if (up) {   /* as long as the file takes: no time limit */
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, &type);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READDATA, up->f);   /* the default reader: fread */
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)up->size);
        if (up->progress) {
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_upload);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, up);
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        }
    } else {
        /* the daemon abandons a query past its own budget; this only bounds a hang */
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->cfg->http_query_timeout_ms + 60000L);
    }
    jbuf body;
    jb_init(&body);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    if (c->cfg->http_tls_cert_file) {
        /* the daemon's own certificate is the one to trust (pinned), so its
         * names need not include the address it is reached at */
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg->http_tls_cert_file);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode rc = curl_easy_perform(h);
    int r = 0;
    if (rc != CURLE_OK) {
        *errmsg = strdup(body.oom ? "out of memory" : errbuf[0] ? errbuf : curl_easy_strerror(rc));
        r = rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : body.oom ? -ENOMEM : -ECONNREFUSED;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
        a->body = jb_take(&body, &a->len);
        if (!a->body && !(a->body = strdup(""))) {   /* an empty body */
            *errmsg = strdup("out of memory");
            r = -ENOMEM;
        }
    }
    if (r < 0)
        client_answer_clear(a);
    jb_free(&body);
    free(url);
    curl_easy_cleanup(h);
    return r;
}

int client_get(client *c, const char *path, client_answer *a, char **errmsg)
{
    return request(c, path, NULL, a, errmsg);
}

int client_post_file(client *c, const char *path, FILE *f, uint64_t size,
                     void (*progress)(void *ud, uint64_t sent, uint64_t total), void *ud,
                     client_answer *a, char **errmsg)
{
    upload up = {f, size, progress, ud};
    return request(c, path, &up, a, errmsg);
}

void client_answer_clear(client_answer *a)
{
    free(a->body);
    free(a->batch_seq);
    free(a->batch_at);
    free(a->live_events);
    *a = (client_answer){0};
}

int client_serves_archive(client *c, client_answer *st, char **theirs, char **errmsg)
{
    *theirs = NULL;
    int r = client_get(c, "/v1/status", st, errmsg);
    if (r < 0)
        return r;
    if (st->status != 200)
        return 1;
    json_t *j = json_loadb(st->body, st->len, 0, NULL);
    const char *path = json_string_value(json_object_get(json_object_get(j, "archive"), "path"));
    const char *ours = c->cfg->archive_path;
    char x[PATH_MAX], y[PATH_MAX];
    r = path && strcmp(realpath(path, x) ? x : path, realpath(ours, y) ? y : ours) == 0 ? 0 : 1;
    if (r && path && !(*theirs = strdup(path))) {
        *errmsg = strdup("out of memory");
        r = -ENOMEM;
    }
    json_decref(j);
    return r;
}

char *client_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *copy = e ? strdup(e) : NULL;   /* ours to free() */
    curl_free(e);
    return copy;
}
