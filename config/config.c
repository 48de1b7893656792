/* config.c - loading the config file: reading it, stripping comments,
 * parsing the JSON, validating it (config_keys.c, config_check.c),
 * resolving the stream and view definitions and fingerprinting the whole.
 *
 * The config is loaded on the main thread (at start and on SIGHUP); the
 * result is immutable and shared read-only, so nothing here locks.
 */
#include "config/config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A config is a few kilobytes; anything this big is a wrong path. */
#define CONFIG_MAX_BYTES (16u << 20)

/* ---- comments ---- */

/* Copies text without its // and block comments, outside strings. Comment
 * characters become spaces and newlines stay, so jansson's line and column
 * of a parse error are those of the file. jansson counts columns in
 * characters, not bytes, so a comment's UTF-8 continuation bytes are
 * dropped rather than blanked. Returns the copy (NUL-terminated, *outlen
 * bytes), or NULL with *err set to the unterminated comment's position
 * (or to NULL when out of memory). */
static char *strip_comments(const char *text, size_t len, size_t *outlen, char **err)
{
    enum { CODE, STRING, ESCAPE, LINE_COMMENT, BLOCK_COMMENT } st = CODE;
    char *out = malloc(len + 1), *o = out;
    size_t line = 1, col = 0, start_line = 0, start_col = 0;
    *err = NULL;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        bool cont = (c & 0xc0) == 0x80;   /* UTF-8 continuation byte */
        if (c == '\n') {
            line++;
            col = 0;
        } else if (!cont) {
            col++;
        }
        switch (st) {
        case CODE:
            if (c == '/' && i + 1 < len && (text[i + 1] == '/' || text[i + 1] == '*')) {
                st = text[i + 1] == '/' ? LINE_COMMENT : BLOCK_COMMENT;
                start_line = line;
                start_col = col;
                *o++ = ' ';
                *o++ = ' ';
                i++;
                col++;
                continue;
            }
            if (c == '"')
                st = STRING;
            *o++ = (char)c;
            break;
        case STRING:
            if (c == '\\')
                st = ESCAPE;
            else if (c == '"')
                st = CODE;
            *o++ = (char)c;
            break;
        case ESCAPE:
            st = STRING;
            *o++ = (char)c;
            break;
        case LINE_COMMENT:
            if (c == '\n') {
                st = CODE;
                *o++ = '\n';
            } else if (!cont) {
                *o++ = ' ';
            }
            break;
        case BLOCK_COMMENT:
            if (c == '*' && i + 1 < len && text[i + 1] == '/') {
                st = CODE;
                *o++ = ' ';
                *o++ = ' ';
                i++;
                col++;
            } else if (c == '\n') {
                *o++ = '\n';
            } else if (!cont) {
                *o++ = ' ';
            }
            break;
        }
    }
    *o = '\0';
    if (st == BLOCK_COMMENT) {
        free(out);
        if (asprintf(err, "line %zu, column %zu: unterminated comment", start_line, start_col) < 0)
            *err = NULL;
        return NULL;
    }
    *outlen = (size_t)(o - out);
    return out;
}

/* ---- loading ---- */

static int add_error(config_errors *errs, char *msg)
{
    if (!msg)
        return -ENOMEM;
    char **items = realloc(errs->items, (errs->n + 1) * sizeof(*items));
    if (!items) {
        free(msg);
        return -ENOMEM;
    }
    errs->items = items;
    items[errs->n++] = msg;
    return 0;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static int load_text(const char *text, size_t len, config **out, config_errors *errs)
{
    config *c = NULL;
    json_t *root = NULL;
    char *clean = NULL, *err = NULL, *canon = NULL;
    size_t clean_len = 0, nerr0 = errs->n;
    int r = -ENOMEM;

    *out = NULL;
    if (!(clean = strip_comments(text, len, &clean_len, &err))) {
        if (err) {
            r = add_error(errs, err);
            r = r < 0 ? r : -EINVAL;
        }
        goto fail;
    }

    /* Duplicate keys would silently shadow each other: reject them. */
    json_error_t jerr;
    root = json_loadb(clean, clean_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson's depth limit is compiled in; its text does not say it */
        const char *why = jerr.text;
        char deep[64];
        if (json_error_code(&jerr) == json_error_stack_overflow) {
            snprintf(deep, sizeof(deep), "nested deeper than %d levels", JSON_PARSER_MAX_DEPTH);
            why = deep;
        }
        if (asprintf(&err, "line %d, column %d: %s", jerr.line, jerr.column, why) < 0)
            err = NULL;
        r = add_error(errs, err);
        r = r < 0 ? r : -EINVAL;
        goto fail;
    }

    if (!(c = calloc(1, sizeof(*c))))
        goto fail;
    cfg_ctx ctx = { .errs = errs, .root = root };
    cfg_object(&ctx, NULL, root, cfg_top_keys, c);
    cfg_cluster_rules(&ctx, c);
    cfg_ctx_clear(&ctx);
    if (ctx.oom)
        goto fail;
    if (errs->n > nerr0) {
        r = -EINVAL;
        goto fail;
    }
    if ((r = defs_resolve(c->streams, c->nstreams, c->views, c->nviews)) < 0)
        goto fail;

    r = -ENOMEM;
    if (!(canon = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT)))
        goto fail;
    snprintf(c->fingerprint, sizeof(c->fingerprint), "%016" PRIx64, fnv1a(canon));

    free(canon);
    free(clean);
    json_decref(root);
    *out = c;
    return 0;
fail:
    free(canon);
    free(clean);
    json_decref(root);
    config_free(c);
    return r;
}

int config_load_buffer(const char *text, size_t len, config **out, config_errors *errs)
{
    return load_text(text, len, out, errs);
}

int config_load_string(const char *text, config **out, config_errors *errs)
{
    return load_text(text, strlen(text), out, errs);
}

/* "<path>: <strerror>" and -errno. */
static int file_error(config_errors *errs, const char *path, int err)
{
    char *msg;
    if (asprintf(&msg, "%s: %s", path, strerror(err)) < 0)
        msg = NULL;
    int r = add_error(errs, msg);
    return r < 0 ? r : -err;
}

int config_load(const char *path, config **out, config_errors *errs)
{
    char *text = NULL;
    size_t len = 0;
    int r, fd;

    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return file_error(errs, path, errno);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        r = file_error(errs, path, errno);
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        r = file_error(errs, path, EISDIR);
        goto done;
    }
    /* Read to the end rather than trust st_size (a pipe, a growing file),
     * up to the cap. */
    size_t cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= CONFIG_MAX_BYTES) {
                r = file_error(errs, path, EFBIG);
                goto done;
            }
            cap = cap ? cap * 2 : 4096;
            char *t = realloc(text, cap + 1);
            if (!t) {
                r = -ENOMEM;
                goto done;
            }
            text = t;
        }
        ssize_t n = read(fd, text + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = file_error(errs, path, errno);
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    text[len] = '\0';
    r = load_text(text, len, out, errs);
done:
    free(text);
    close(fd);
    return r;
}

/* ---- the rest of the API ---- */

void config_free(config *c)
{
    if (!c)
        return;
    free(c->brokers);
    free(c->group_id);
    free(c->start);
    for (size_t i = 0; c->options && i < c->noptions; i++) {
        free(c->options[i].key);
        free(c->options[i].value);
    }
    free(c->options);
    for (size_t i = 0; c->owned && i < c->nowned; i++) {
        free(c->owned[i].topic);
        free(c->owned[i].partitions);
    }
    free(c->owned);
    for (size_t i = 0; c->peers && i < c->npeers; i++) {
        free(c->peers[i].url);
        free(c->peers[i].shard);
    }
    free(c->peers);
    free(c->cluster_shard);
    free(c->cluster_token_file);
    free(c->cluster_ca_file);
    if (c->cluster_token)
        explicit_bzero(c->cluster_token, strlen(c->cluster_token));
    free(c->cluster_token);
    free(c->archive_path);
    free(c->http_host);
    free(c->http_auth_token_file);
    if (c->http_auth_token)
        explicit_bzero(c->http_auth_token, strlen(c->http_auth_token));
    free(c->http_auth_token);
    free(c->http_tls_cert_file);
    free(c->http_tls_key_file);
    free(c->http_tls_cert);
    if (c->http_tls_key)
        explicit_bzero(c->http_tls_key, strlen(c->http_tls_key));
    free(c->http_tls_key);
    free(c->http_cors_origin);
    for (size_t i = 0; c->streams && i < c->nstreams; i++)
        stream_def_clear(&c->streams[i]);
    free(c->streams);
    for (size_t i = 0; c->views && i < c->nviews; i++)
        view_def_clear(&c->views[i]);
    free(c->views);
    free(c);
}

void config_errors_clear(config_errors *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->items[i]);
    free(e->items);
    e->items = NULL;
    e->n = 0;
}

const view_def *config_find_view(const config *c, const char *name, size_t *idx)
{
    for (size_t i = 0; c && i < c->nviews; i++) {
        if (strcmp(c->views[i].name, name) == 0) {
            if (idx)
                *idx = i;
            return &c->views[i];
        }
    }
    return NULL;
}

gran_t config_view_unit(const config *c, size_t v)
{
    return c->views[v].gran > c->batch_partition ? c->views[v].gran : c->batch_partition;
}

void config_retention_cuts(const config *c, int64_t now, int64_t *arch_cut, int64_t *view_cuts)
{
    *arch_cut = c->archive_retention_s ? gran_floor(c->batch_partition,
                                                     now - c->archive_retention_s)
                                       : INT64_MIN;
    for (size_t v = 0; view_cuts && v < c->nviews; v++) {
        gran_t unit = config_view_unit(c, v);
        int64_t cut = c->views[v].retention_s ? gran_floor(unit, now - c->views[v].retention_s)
                                              : INT64_MIN;
        /* a view partition straddling the archive's cut keeps its segment */
        if (*arch_cut != INT64_MIN && gran_floor(unit, *arch_cut) > cut)
            cut = gran_floor(unit, *arch_cut);
        view_cuts[v] = cut;
    }
}
