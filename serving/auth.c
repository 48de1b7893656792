/* auth.c - bearer tokens: constant-time comparison, the Authorization
 * header, and which paths need a token. Pure functions; any thread. */
#include "serving/auth.h"

#include <string.h>
#include <strings.h>

#include "config/config.h"

bool auth_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Every byte of a is compared with a byte of b (b's bytes cycle when b
     * is shorter), and the differences are OR-ed: no early exit, no branch
     * on the data. The length difference joins the same accumulator. */
    volatile unsigned char diff = alen != blen;
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)(blen ? b[i % blen] : 0);
    return diff == 0;
}

bool auth_header_ok(const char *header, const char *token)
{
    if (!header || !token || strncasecmp(header, "Bearer ", 7) != 0)
        return false;
    const char *t = header + 7;
    while (*t == ' ')
        t++;
    size_t len = strlen(t);
    while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
        len--;   /* optional whitespace after a header value (RFC 9110 5.5) */
    return auth_equal(token, strlen(token), t, len);
}

/* The web UI's static assets ("/" and "/ui/..."): the same bytes for
 * everyone and no data, so the page can load and ask for the token that
 * its API calls need. */
static bool ui_asset_path(const char *path)
{
    return strcmp(path, "/") == 0 || strncmp(path, "/ui/", 4) == 0;
}

bool auth_required(const char *path, int protect)
{
    if (protect == CFG_PROTECT_ALL)
        return strcmp(path, "/healthz") != 0 && strcmp(path, "/readyz") != 0 &&
               !ui_asset_path(path);
    return strncmp(path, "/v1/admin", 9) == 0 && (path[9] == '\0' || path[9] == '/');
}

bool auth_internal(const char *path)
{
    return strncmp(path, "/v1/internal/", 13) == 0;
}
