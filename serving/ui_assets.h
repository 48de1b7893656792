/* ui_assets.h - the web UI's files, built into the binary (serving/
 * private). The table is generated at build time by serving/ui/embed.py
 * from serving/ui/ and Debian's libjs-dygraphs (serving/meson.build). */
#pragma once
#include <stddef.h>

typedef struct {
    const char *name;           /* file name: "app.js" */
    const char *type;           /* Content-Type */
    const char *etag;           /* quoted hash of the bytes */
    const unsigned char *data;
    size_t len;
} ui_asset;

extern const ui_asset ui_assets[];
extern const size_t ui_nassets;
