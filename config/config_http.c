/* config_http.c - the "http" section of the config: where to listen, the
 * pool size, bearer-token auth, TLS, CORS and the request limits.
 *
 * The token and the TLS certificate and key are read here, at load time,
 * so --check-config and a start both fail early with the file's path when
 * one is missing, empty or malformed; the server then needs no file
 * access (the daemon may run with a read-only view of /etc).
 *
 * The defaults written here are the ones documented in
 * config/lambdad.example.json and the README; change them together.
 *
 * Runs on the thread that loads the config; no shared state, no locks.
 */
#include "config/config_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LISTEN_DEFAULT "127.0.0.1:8080"
#define TOKEN_MAX_BYTES 4096
#define PEM_MAX_BYTES (1024 * 1024)

/* ---- listen ---- */

/* "HOST:PORT", HOST an IPv4 address or localhost, PORT 0..65535. */
static int parse_listen(const char *s, char host[INET_ADDRSTRLEN], int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || colon - s >= INET_ADDRSTRLEN)
        return -1;
    char h[INET_ADDRSTRLEN];
    memcpy(h, s, (size_t)(colon - s));
    h[colon - s] = '\0';
    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (plen == 0 || plen > 5 || strspn(p, "0123456789") != plen || atoi(p) > 65535)
        return -1;
    struct in_addr a;
    if (strcmp(h, "localhost") == 0)
        a.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, h, &a) != 1)
        return -1;
    if (!inet_ntop(AF_INET, &a, host, INET_ADDRSTRLEN))
        return -1;
    *port = atoi(p);
    return 0;
}

static void check_listen(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    if (v && !json_is_string(v)) {
        cfg_err(ctx, path, "must be a string");
        return;
    }
    char host[INET_ADDRSTRLEN];
    if (parse_listen(v ? json_string_value(v) : LISTEN_DEFAULT, host, &c->http_port) < 0) {
        cfg_err(ctx, path, "must be HOST:PORT with an IPv4 address or localhost and a port "
                "from 0 to 65535 (0: any free port)");
        return;
    }
    free(c->http_host);
    c->http_host = cfg_strdup(ctx, host);
}

/* ---- files named by the config ---- */

/* Reads the whole file at fpath (at most max bytes) into a NUL-terminated
 * string; reports at path and returns NULL on failure. *len excludes the
 * NUL. */
static char *read_file(cfg_ctx *ctx, const char *path, const char *fpath, size_t max, size_t *len)
{
    char *buf = NULL;
    int fd = open(fpath, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cfg_err(ctx, path, "cannot read %s: %s", fpath, strerror(errno));
        return NULL;
    }
    struct stat st;
    int err = fstat(fd, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (err) {
        cfg_err(ctx, path, "cannot read %s: %s", fpath, strerror(err));
        goto fail;
    }
    if (!(buf = malloc(max + 2))) {
        ctx->oom = true;
        goto fail;
    }
    size_t n = 0;
    while (n <= max) {   /* one byte past max tells a file that is too large */
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            cfg_err(ctx, path, "cannot read %s: %s", fpath, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        cfg_err(ctx, path, "%s is larger than %zu bytes", fpath, max);
        goto fail;
    }
    buf[n] = '\0';
    close(fd);
    *len = n;
    return buf;
fail:
    if (buf)
        explicit_bzero(buf, max + 2);   /* it may hold part of a secret */
    free(buf);
    close(fd);
    return NULL;
}

/* ---- auth ---- */

static const char *protect_name_of(int v)
{
    return v == CFG_PROTECT_ALL ? "all" : "admin";
}

static const cfg_key auth_keys[] = {
    KEY_STR("token_file", config, http_auth_token_file, NULL, REQUIRED),
    KEY_ENUM("protect", config, http_auth_protect, protect_name_of, CFG_PROTECT_ADMIN,
             CFG_PROTECT_ALL, CFG_PROTECT_ADMIN),
    { 0 },
};

/* A bearer token: the file's text without its trailing newline(s), one
 * word of printable ASCII (what an Authorization header can carry); NULL
 * after reporting at kpath. Also the cluster's token (config_cluster.c). */
char *cfg_load_token(cfg_ctx *ctx, const char *kpath, const char *fpath)
{
    size_t len = 0;
    char *t = read_file(ctx, kpath, fpath, TOKEN_MAX_BYTES, &len);
    if (!t)
        return NULL;
    while (len && (t[len - 1] == '\n' || t[len - 1] == '\r'))
        t[--len] = '\0';
    bool ok = len > 0;
    for (size_t i = 0; i < len && ok; i++)
        ok = t[i] > 0x20 && t[i] < 0x7f;
    if (len == 0)
        cfg_err(ctx, kpath, "%s is empty", fpath);
    else if (!ok)
        cfg_err(ctx, kpath, "%s must hold one token of printable ASCII characters without spaces",
                fpath);
    else
        return t;   /* the caller's config owns it now */
    explicit_bzero(t, len);
    free(t);
    return NULL;
}

static void load_token(cfg_ctx *ctx, const char *path, config *c)
{
    char *kpath = cfg_path_key(ctx, path, "token_file");
    if (kpath)
        c->http_auth_token = cfg_load_token(ctx, kpath, c->http_auth_token_file);
    free(kpath);
}

static void check_auth(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    c->http_auth_protect = CFG_PROTECT_ADMIN;
    if (!v)
        return;   /* default: no auth */
    size_t nerr = ctx->errs->n;
    cfg_object(ctx, path, v, auth_keys, c);
    if (ctx->errs->n == nerr && c->http_auth_token_file)
        load_token(ctx, path, c);
}

/* ---- tls ---- */

static const cfg_key tls_keys[] = {
    KEY_STR("cert_file", config, http_tls_cert_file, NULL),
    KEY_STR("key_file", config, http_tls_key_file, NULL),
    { 0 },
};

static char *load_pem(cfg_ctx *ctx, const char *path, const char *key, const char *fpath)
{
    char *kpath = cfg_path_key(ctx, path, key);
    size_t len = 0;
    char *pem = kpath ? read_file(ctx, kpath, fpath, PEM_MAX_BYTES, &len) : NULL;
    if (pem && len == 0) {
        cfg_err(ctx, kpath, "%s is empty", fpath);
    } else if (pem && (strlen(pem) != len || !strstr(pem, "-----BEGIN "))) {
        cfg_err(ctx, kpath, "%s is not PEM (no -----BEGIN line)", fpath);
    } else {
        free(kpath);
        return pem;
    }
    explicit_bzero(pem, len);
    free(pem);
    free(kpath);
    return NULL;
}

static void check_tls(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    if (!v)
        return;   /* default: plain HTTP */
    size_t nerr = ctx->errs->n;
    cfg_object(ctx, path, v, tls_keys, c);
    if (ctx->errs->n != nerr)
        return;
    bool cert = c->http_tls_cert_file != NULL, key = c->http_tls_key_file != NULL;
    if (cert != key) {
        char *kpath = cfg_path_key(ctx, path, cert ? "key_file" : "cert_file");
        if (kpath)
            cfg_err(ctx, kpath, "required with %s.%s", path, cert ? "cert_file" : "key_file");
        free(kpath);
        return;
    }
    if (!cert)
        return;
    c->http_tls_cert = load_pem(ctx, path, "cert_file", c->http_tls_cert_file);
    c->http_tls_key = load_pem(ctx, path, "key_file", c->http_tls_key_file);
}

/* ---- cors ---- */

/* "*", or scheme://host[:port] with scheme http or https, host a DNS name,
 * an IPv4 address or a bracketed IPv6 one: what a browser sends in Origin.
 * The value goes into a header, so nothing else is allowed in it. */
static bool valid_origin(const char *s)
{
    if (strcmp(s, "*") == 0)
        return true;
    if (strncmp(s, "https://", 8) == 0)
        s += 8;
    else if (strncmp(s, "http://", 7) == 0)
        s += 7;
    else
        return false;
    size_t host;
    if (*s == '[') {
        host = strspn(s + 1, "0123456789abcdefABCDEF:.");
        if (host == 0 || s[1 + host] != ']')
            return false;
        host += 2;
    } else {
        host = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
        if (host == 0 || s[0] == '.' || s[0] == '-')
            return false;
    }
    s += host;
    if (*s == ':') {
        size_t digits = strspn(s + 1, "0123456789");
        if (digits == 0 || digits > 5 || atoi(s + 1) > 65535)
            return false;
        s += 1 + digits;
    }
    return *s == '\0';
}

static void check_cors(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    if (!v)
        return;   /* default: no CORS headers */
    if (!json_is_string(v)) {
        cfg_err(ctx, path, "must be a string");
        return;
    }
    if (!valid_origin(json_string_value(v)) || strlen(json_string_value(v)) != json_string_length(v)) {
        cfg_err(ctx, path, "must be \"*\" or an origin such as https://dash.example.com "
                "(scheme://host[:port], without a path)");
        return;
    }
    free(c->http_cors_origin);
    c->http_cors_origin = cfg_strdup(ctx, json_string_value(v));
}

/* ---- the section ---- */

static const cfg_key limits_keys[] = {
    KEY_INT("max_body_bytes", config, http_max_body_bytes, 0, 1073741824, 1048576),
    KEY_INT("max_query_bytes", config, http_max_query_bytes, 1, 65536, 8192),
    KEY_INT("max_rows", config, http_max_rows, 1, 10000000, 100000),
    KEY_INT("max_connections", config, http_max_connections, 1, 100000, 1024),
    KEY_INT("max_connections_per_ip", config, http_max_connections_per_ip, 1, 100000, 64),
    KEY_INT("connection_timeout_s", config, http_connection_timeout_s, 1, 3600, 30),
    KEY_INT("query_timeout_ms", config, http_query_timeout_ms, 1, 600000, 10000),
    { 0 },
};

const cfg_key cfg_http_keys[] = {
    KEY_CUSTOM("listen", check_listen),
    KEY_INT("threads", config, http_threads, 1, 64, 2),
    KEY_CUSTOM("auth", check_auth),
    KEY_CUSTOM("tls", check_tls),
    KEY_CUSTOM("cors_origin", check_cors),
    KEY_SECTION("limits", limits_keys),
    { 0 },
};
