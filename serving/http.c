/* http.c - the libmicrohttpd server: listening socket, request plumbing,
 * size limits, and handing each request to api_dispatch().
 *
 * Threads: serving_start/serving_stop run on the daemon's main thread;
 * requests run on libmicrohttpd's pool (cfg->http_threads epoll threads).
 * Each request owns a small req_state (freed by on_completed); nothing is
 * shared between requests, so there is no lock here.
 *
 * Limits, checked before anything is buffered: a query string over 8 KiB
 * is a 413 (seen in the URI callback, before arguments are parsed); a body
 * over 1 MiB is a 413 when its Content-Length says so, and a chunked body
 * that grows past 1 MiB closes the connection. Smaller bodies are read and
 * discarded. Request lines and headers beyond the connection memory limit
 * (32 KiB) are refused by libmicrohttpd itself (414/431, its own body).
 *
 * We bind the socket ourselves and pass it with MHD_OPTION_LISTEN_SOCKET:
 * that way a failure to listen reports the real errno ("Address already in
 * use") instead of a NULL daemon.
 */
#include "serving/serving.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>
#include <microhttpd.h>

#include "core/log.h"
#include "serving/api.h"

#define MAX_QUERY_STRING   (8 * 1024)
#define MAX_BODY           (1024 * 1024)
#define CONN_TIMEOUT_S     30
#define CONN_LIMIT         1024      /* issue #4: make these configurable */
#define PER_IP_CONN_LIMIT  256
#define CONN_MEMORY_LIMIT  (32 * 1024)
#define LISTEN_BACKLOG     1024

struct serving {
    struct MHD_Daemon *mhd;
    api_ctx api;
    int port;
};

typedef struct {
    uint64_t body_bytes;     /* request body read (and discarded) so far */
} req_state;

/* The URI callback returns this marker instead of a req_state when the
 * query string is over the limit, so nothing is allocated for it. */
static char uri_too_long;

static const char oom_body[] = "{\"error\":{\"status\":500,\"message\":\"out of memory\"}}";

static enum MHD_Result send_reply(struct MHD_Connection *con, api_reply *r)
{
    struct MHD_Response *resp;
    if (r->body) {
        /* ownership of the body moves to the response (freed with free()) */
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->body = NULL;
    } else {
        r->status = 500;
        resp = MHD_create_response_from_buffer(strlen(oom_body), (void *)oom_body,
                                               MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) {
        api_reply_clear(r);
        return MHD_NO;     /* closes the connection */
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ret = MHD_queue_response(con, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    api_reply_clear(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *con, int status, const char *msg)
{
    api_reply r = {0};
    api_error(&r, status, msg, strlen(msg));
    return send_reply(con, &r);
}

typedef struct {
    qparam *p;
    size_t n, cap;
    bool oom;
} param_list;

static enum MHD_Result collect_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t key_size, const char *value, size_t value_size)
{
    param_list *l = cls;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        qparam *np = realloc(l->p, ncap * sizeof(*np));
        if (!np) {
            l->oom = true;
            return MHD_NO;
        }
        l->p = np;
        l->cap = ncap;
    }
    l->p[l->n++] = (qparam){.key = key, .klen = key_size, .val = value, .vlen = value_size};
    return MHD_YES;
}

/* A pool thread: called once with the headers, once per body piece, then
 * once more with *upload_data_size == 0 when the request is complete. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    serving *s = cls;
    if (*req_cls == &uri_too_long)
        return send_error(con, 413, "query string too long (limit 8192 bytes)");

    req_state *st = *req_cls;
    if (!st) {
        /* headers are in: refuse an announced oversized body before reading it */
        const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > MAX_BODY)
            return send_error(con, 413, "request body too large (limit 1048576 bytes)");
        st = calloc(1, sizeof(*st));
        if (!st)
            return MHD_NO;
        *req_cls = st;   /* freed by on_completed */
        return MHD_YES;
    }
    if (*upload_data_size) {
        st->body_bytes += *upload_data_size;
        *upload_data_size = 0;   /* discarded: no route takes a body */
        if (st->body_bytes > MAX_BODY)
            return MHD_NO;       /* a chunked body past the limit: close */
        return MHD_YES;
    }

    /* the absolute form "http://host/path" (RFC 9112 3.2.2) names /path */
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        const char *path = strchr(strstr(url, "//") + 2, '/');
        url = path ? path : "/";
    }

    param_list params = {0};
    MHD_get_connection_values_n(con, MHD_GET_ARGUMENT_KIND, collect_param, &params);
    api_reply r = {0};
    if (params.oom)
        api_error(&r, 500, "out of memory", strlen("out of memory"));
    else
        api_dispatch(&s->api, method, url, params.p, params.n, &r);
    free(params.p);
    if (r.status >= 500 && r.status != 503)
        log_warn("HTTP %s %s: %d %.*s", method, url, r.status, r.body ? (int)r.len : 0,
                 r.body ? r.body : "");
    return send_reply(con, &r);
}

/* A pool thread: the request is over (answered, failed or timed out). */
static void on_completed(void *cls, struct MHD_Connection *con, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    if (*req_cls != &uri_too_long)
        free(*req_cls);
    *req_cls = NULL;
}

/* A pool thread, before the URI is parsed: the raw request target. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
    const char *q = strchr(uri, '?');
    if (q && strlen(q + 1) > MAX_QUERY_STRING)
        return &uri_too_long;
    return NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    log_vmsg(LOG_LVL_WARN, fmt, ap);
}

static char *addr_text(const char *host, int port)
{
    char *s = NULL;
    if (asprintf(&s, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port) < 0)
        return NULL;
    return s;
}

static char *listen_error(const char *host, int port, const char *why)
{
    char *addr = addr_text(host, port), *s = NULL;
    if (asprintf(&s, "cannot listen on %s: %s", addr ? addr : host, why) < 0)
        s = NULL;
    free(addr);
    return s;
}

/* Binds and listens on host:port; returns the socket or a negative errno. */
static int open_listener(const char *host, int port, int *family, char **errmsg)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        *errmsg = listen_error(host, port, gai_strerror(rc));
        return rc == EAI_MEMORY ? -ENOMEM : -EINVAL;
    }
    int err = EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0) {
            *family = ai->ai_family;
            freeaddrinfo(res);
            return fd;
        }
        err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    *errmsg = listen_error(host, port, strerror(err));
    return -err;
}

int serving_start(const config *cfg, const serving_source *src, serving **out, char **errmsg)
{
    *out = NULL;
    *errmsg = NULL;
    int family = AF_INET;
    serving *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->api = (api_ctx){.cfg = cfg, .src = src, .started_ms = api_now_ms()};
    int fd = open_listener(cfg->http_host, cfg->http_port, &family, errmsg);
    if (fd < 0) {
        free(s);
        return fd;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                     MHD_USE_ERROR_LOG | (family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd,   /* the daemon closes it when it stops */
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)PER_IP_CONN_LIMIT,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_END);
    if (!s->mhd) {
        /* libmicrohttpd leaves the socket open when it rejects its options
         * and may close it when a later step fails: close it if still ours */
        if (fcntl(fd, F_GETFD) != -1)
            close(fd);
        *errmsg = listen_error(cfg->http_host, cfg->http_port,
                               "cannot start the HTTP server (libmicrohttpd)");
        free(s);
        return -EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    if (s->port == 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    *out = s;
    return 0;
}

int serving_port(const serving *s)
{
    return s->port;
}

void serving_stop(serving *s)
{
    if (!s)
        return;
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    free(s);
}
