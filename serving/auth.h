/* auth.h - bearer-token checks for the HTTP API (serving/ private).
 *
 * Pure functions, any thread, no state: which routes need the token, and
 * whether an Authorization header carries it. The comparison takes the
 * same time whatever the given token is, so timing tells an attacker
 * nothing about how much of a guess was right.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* true when a and b hold the same bytes. Runs in time that depends on
 * alen only (the expected token's length), never on b or on where the two
 * first differ. */
bool auth_equal(const char *a, size_t alen, const char *b, size_t blen);

/* true when the Authorization header value (NULL: none) is "Bearer TOKEN"
 * with the configured token (scheme case-insensitive, RFC 6750 2.1). */
bool auth_header_ok(const char *header, const char *token);

/* true when path needs the token under protect (CFG_PROTECT_*): "admin"
 * protects /v1/admin and everything below it; "all" protects every path
 * but /healthz and /readyz, which probes call without credentials, and the
 * web UI's static assets ("/" and "/ui/..."), which hold no data. The
 * test is on the path prefix, so routes added under /v1/admin/ later are
 * covered without a change here. */
bool auth_required(const char *path, int protect);
/* Whether path is the peers' (/v1/internal/...): with cluster.token_file
 * it takes that token, whatever http.auth says. */
bool auth_internal(const char *path);
