/* ui.c - GET / and GET /ui/{asset}: the built-in web UI (serving/ui/:
 * index.html, app.js, app.css, and Debian's dygraphs), embedded in the
 * binary at build time (ui_assets.h).
 *
 * Each answer carries the asset's ETag and "Cache-Control: no-cache", so
 * a browser revalidates and gets a 304 while the binary is unchanged; the
 * page gets the security headers of an HTML answer (api_reply.html).
 * The assets need no token (auth.c): the page asks for one when the API
 * answers 401. Runs on HTTP threads; reads constant data only.
 */
#include "serving/dash.h"
#include "serving/ui_assets.h"

#include <stdlib.h>
#include <string.h>

static void serve(const ui_asset *a, const api_request *rq, api_reply *r)
{
    bool fresh = rq->if_none_match && strcmp(rq->if_none_match, a->etag) == 0;
    size_t len = fresh ? 0 : a->len;
    char *body = malloc(len + 1);   /* every reply body is ours to free() */
    if (!body) {
        api_error(r, 500, "out of memory", strlen("out of memory"));
        return;
    }
    memcpy(body, a->data, len);
    free(r->body);
    r->status = fresh ? 304 : 200;
    r->body = body;
    r->len = len;
    r->content_type = a->type;
    r->etag = a->etag;
    r->cache_control = "no-cache";
    r->html = strncmp(a->type, "text/html", 9) == 0;
}

static const ui_asset *find(const char *name)
{
    for (size_t i = 0; i < ui_nassets; i++)
        if (strcmp(ui_assets[i].name, name) == 0)
            return &ui_assets[i];
    return NULL;
}

void ui_h_index(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    serve(find("index.html"), rq, r);
}

void ui_h_asset(const api_ctx *ctx, const api_request *rq, api_reply *r)
{
    const char *name = rq->path + strlen("/ui/");
    const ui_asset *a = strcmp(name, "index.html") == 0 ? NULL : find(name);
    if (!a) {
        dash_error(r, 404, "no such endpoint: ", rq->path, NULL);
        return;
    }
    serve(a, rq, r);
}
