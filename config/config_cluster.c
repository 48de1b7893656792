/* config_cluster.c - the "cluster" section (scale-out, README "Running
 * several instances"): this instance's shard, its peers and how to reach
 * them.
 *
 *   "cluster": {"shard": "a",
 *               "peers": [{"url": "http://10.0.0.2:8080", "shard": "b"}],
 *               "token_file": "/etc/lambdad/cluster.token",
 *               "ca_file": "/etc/lambdad/cluster-ca.pem",
 *               "connect_timeout_ms": 1000, "retry_after_ms": 5000}
 *
 * A peer whose shard is another one owns other Kafka partitions, so an
 * instance with such peers must own a part itself: kafka.partitions is
 * then required (an instance reading everything would count the peers'
 * events twice). Runs on the loading thread; no shared state.
 */
#include "config/config_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PEERS 256
#define MAX_URL 1024

static const cfg_key peer_keys[] = {
    KEY_STR("url", config_peer, url, NULL, REQUIRED),
    KEY_NAME("shard", config_peer, shard, REQUIRED),
    { 0 },
};

/* http://host[:port] or https://..., without a path (the API's paths are
 * appended); one trailing '/' is dropped. */
static void check_url(cfg_ctx *ctx, const char *path, config_peer *p)
{
    size_t len = strlen(p->url);
    if (len && p->url[len - 1] == '/')
        p->url[--len] = '\0';
    const char *rest = strncmp(p->url, "http://", 7) == 0    ? p->url + 7
                       : strncmp(p->url, "https://", 8) == 0 ? p->url + 8
                                                              : NULL;
    bool ok = rest && *rest && len <= MAX_URL && !strchr(rest, '/') && !strchr(rest, '?');
    for (const char *s = p->url; ok && *s; s++)
        ok = *s > 0x20 && *s < 0x7f;
    if (!ok) {
        char *upath = cfg_path_key(ctx, path, "url");
        cfg_err(ctx, upath ? upath : path,
                "must be http://HOST[:PORT] or https://HOST[:PORT] without a path");
        free(upath);
    }
}

static void check_peers(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    if (!v)
        return;
    if (!json_is_array(v)) {
        cfg_err(ctx, path, "must be an array");
        return;
    }
    size_t n = json_array_size(v);
    if (n > MAX_PEERS) {
        cfg_err(ctx, path, "must have at most %d peers", MAX_PEERS);
        return;
    }
    if (n == 0)
        return;
    if (!(c->peers = calloc(n, sizeof(*c->peers)))) {
        ctx->oom = true;
        return;
    }
    c->npeers = n;   /* counted at once, so config_free frees whatever gets filled */
    for (size_t i = 0; i < n; i++) {
        char *ppath = cfg_path_idx(ctx, path, i);
        if (!ppath)
            continue;
        size_t nerr = ctx->errs->n;
        cfg_object(ctx, ppath, json_array_get(v, i), peer_keys, &c->peers[i]);
        if (ctx->errs->n == nerr && c->peers[i].url) {
            check_url(ctx, ppath, &c->peers[i]);
            for (size_t j = 0; j < i && ctx->errs->n == nerr; j++)
                if (c->peers[j].url && strcmp(c->peers[j].url, c->peers[i].url) == 0)
                    cfg_err(ctx, ppath, "peer %s is listed twice (also %s[%zu])", c->peers[i].url,
                            path, j);
        }
        free(ppath);
    }
}

static void check_cluster_token(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    if (!v)
        return;
    if (!cfg_check_string(ctx, path, v))
        return;
    c->cluster_token_file = cfg_strdup(ctx, json_string_value(v));
    if (c->cluster_token_file)
        c->cluster_token = cfg_load_token(ctx, path, c->cluster_token_file);
}

/* Read at load like the other files: a path that cannot be read is an
 * error now, not a failed TLS handshake at the first query. */
static void check_ca_file(cfg_ctx *ctx, const char *path, json_t *v, void *target)
{
    config *c = target;
    if (!v || !cfg_check_string(ctx, path, v))
        return;
    const char *f = json_string_value(v);
    if (access(f, R_OK) != 0)
        cfg_err(ctx, path, "cannot read %s: %s", f, strerror(errno));
    else
        c->cluster_ca_file = cfg_strdup(ctx, f);
}

const cfg_key cfg_cluster_keys[] = {
    KEY_NAME("shard", config, cluster_shard),
    KEY_CUSTOM("peers", check_peers),
    KEY_CUSTOM("token_file", check_cluster_token),
    KEY_CUSTOM("ca_file", check_ca_file),
    KEY_INT("connect_timeout_ms", config, cluster_connect_timeout_ms, 1, 600000, 1000),
    KEY_INT("retry_after_ms", config, cluster_retry_after_ms, 0, 3600000, 5000),
    { 0 },
};

void cfg_cluster_rules(cfg_ctx *ctx, config *c)
{
    if (!c->npeers)
        return;
    if (!c->cluster_shard) {
        cfg_err(ctx, "cluster.shard", "required when cluster.peers is set (the name of the "
                "shard this instance serves)");
        return;
    }
    for (size_t i = 0; i < c->npeers; i++)
        if (c->peers[i].shard && strcmp(c->peers[i].shard, c->cluster_shard) != 0 &&
            !c->nowned) {
            cfg_err(ctx, "kafka.partitions",
                    "required when cluster.peers has another shard ('%s' at %s): an instance "
                    "that reads every partition would count its peers' events again",
                    c->peers[i].shard, c->peers[i].url ? c->peers[i].url : "?");
            return;
        }
}
