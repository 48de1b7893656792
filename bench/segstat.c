/* segstat.c - where the bytes of a views file go: bench-segstat VIEWS_FILE
 *
 * For each view (its current segments): the header and dictionary bytes,
 * then per level its rows and compressed bytes, and per column (the bucket
 * index, each dimension, each metric) its bytes once decompressed and its
 * bytes when compressed alone at the segments' zstd level (an estimate of
 * its share: a part is one zstd frame, a block per column). Then what
 * SQLite adds around the blobs. The format is core/segment.h's; this reads
 * the parts as that header describes them, so it needs the format's
 * private constants (core/segment_int.h). A diagnostic: read-only, the
 * daemon may run.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "core/bytes.h"
#include "core/segment.h"
#include "core/segment_int.h"

#define MAXCOL 64

typedef struct {
    double rows, z, raw, colraw[MAXCOL], colz[MAXCOL];
    int unit, ncol;
} levstat;

typedef struct {
    char name[128];
    size_t nsegs;
    double bytes, header, dictz;
    levstat lv[SEG_UNIT_PARTITION + 1];   /* by unit code (segment.h) */
    size_t ndims, nmetrics;
} vstat;

static const char *unit_name(int code)
{
    gran_t g;
    return seg_unit_of_code((unsigned)code, &g) ? (g == GRAN_ALL ? "partition" : gran_name(g)) : "?";
}

static size_t zalone(const void *p, size_t n)
{
    size_t bound = ZSTD_compressBound(n);
    void *o = malloc(bound);
    size_t r = o ? ZSTD_compress(o, bound, p, n, SEG_ZSTD_LEVEL) : 0;
    free(o);
    return ZSTD_isError(r) ? 0 : r;
}

/* Adds one level part's columns; false when it does not parse. */
static bool add_level(levstat *ls, const unsigned char *raw, size_t len, size_t nbuckets, size_t ncol)
{
    bytes_r r = br_init(raw, len);
    const unsigned char *start = r.p;
    for (size_t i = 0; i < nbuckets; i++) {
        br_varint(&r);
        br_varint(&r);
    }
    if (r.bad)
        return false;
    ls->colraw[0] += (double)(r.p - start);
    ls->colz[0] += (double)zalone(start, (size_t)(r.p - start));
    for (size_t c = 1; c <= ncol && c < MAXCOL; c++) {
        uint64_t l = br_varint(&r);
        const unsigned char *p = l <= br_left(&r) ? br_take(&r, (size_t)l) : NULL;
        if (!p)
            return false;
        ls->colraw[c] += (double)l;
        ls->colz[c] += (double)zalone(p, (size_t)l);
    }
    ls->ncol = (int)(ncol + 1 < MAXCOL ? ncol + 1 : MAXCOL);
    return !r.bad && br_left(&r) == 0;
}

static bool add_segment(vstat *v, const unsigned char *p, size_t len)
{
    seg_info in;
    if (seg_read_info(p, len, &in) != 0 || in.len != len)
        return false;
    size_t hl = SEG_HDR_LEN(in.nlevels), off = hl + seg_get_le(p + 40, 4);
    v->nsegs++;
    v->bytes += (double)len;
    v->header += (double)hl;
    v->dictz += (double)seg_get_le(p + 40, 4);
    v->ndims = in.ndims;
    v->nmetrics = in.nmetrics;
    for (size_t i = in.nlevels; i-- > 0;) {
        const unsigned char *e = p + SEG_HDR_FIXED + SEG_HDR_LEVEL * i;
        size_t zl = seg_get_le(e + 16, 4), rl = seg_get_le(e + 20, 4);
        int code = e[0];   /* read_info checked it */
        levstat *ls = &v->lv[code];
        unsigned char *raw = malloc(rl ? rl : 1);
        bool ok = raw && ZSTD_decompress(raw, rl, p + off, zl) == rl;
        ok = ok && add_level(ls, raw, rl, seg_get_le(e + 4, 4), in.ndims + in.nmetrics);
        free(raw);
        if (!ok)
            return false;
        ls->unit = code;
        ls->rows += (double)in.nrows[i];
        ls->z += (double)zl;
        ls->raw += (double)rl;
        off += zl;
    }
    return true;
}

static void print_view(const vstat *v, double total)
{
    printf("%s: %zu segments, %.0f bytes (%.1f%% of the file); headers %.0f, dictionaries %.0f\n",
           v->name, v->nsegs, v->bytes, 100 * v->bytes / total, v->header, v->dictz);
    for (size_t l = 0; l <= SEG_UNIT_PARTITION; l++) {
        const levstat *ls = &v->lv[l];
        if (ls->rows == 0)
            continue;
        printf("  %-9s %10.0f rows %11.0f bytes (%.2f a row; %.0f decompressed)\n",
               unit_name(ls->unit), ls->rows, ls->z, ls->z / ls->rows, ls->raw);
        for (int c = 0; c < ls->ncol; c++) {
            char name[32];
            if (c == 0)
                snprintf(name, sizeof(name), "buckets");
            else if ((size_t)c <= v->ndims)
                snprintf(name, sizeof(name), "dim %d", c - 1);
            else
                snprintf(name, sizeof(name), "metric %zu", (size_t)c - 1 - v->ndims);
            printf("    %-10s %11.0f raw %11.0f alone (%.2f a row)\n", name, ls->colraw[c],
                   ls->colz[c], ls->colz[c] / ls->rows);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench-segstat VIEWS_FILE\n");
        return 2;
    }
    sqlite3 *db;
    sqlite3_stmt *st;
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT s.view, d.data FROM segments s JOIN segdata d USING (id)"
                               " WHERE s.current = 1 ORDER BY s.view", -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench-segstat: %s: %s\n", argv[1], sqlite3_errmsg(db));
        sqlite3_close(db);
        return 1;
    }
    vstat *views = NULL;
    size_t nviews = 0, bad = 0;
    double blobs = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!nviews || strcmp(views[nviews - 1].name, name ? name : "") != 0) {
            vstat *nv = realloc(views, (nviews + 1) * sizeof(*nv));
            if (!nv)
                break;
            views = nv;
            memset(&views[nviews], 0, sizeof(*views));
            snprintf(views[nviews++].name, sizeof(views->name), "%s", name ? name : "");
        }
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        blobs += (double)len;
        if (!add_segment(&views[nviews - 1], sqlite3_column_blob(st, 1), len))
            bad++;
    }
    sqlite3_finalize(st);
    int64_t pragma[3] = {0};
    const char *const pragmas[3] = {"PRAGMA page_size", "PRAGMA page_count", "PRAGMA freelist_count"};
    for (int i = 0; i < 3; i++)
        if (sqlite3_prepare_v2(db, pragmas[i], -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                pragma[i] = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
    sqlite3_close(db);
    struct stat sb;
    double file = stat(argv[1], &sb) == 0 ? (double)sb.st_size : 0;
    for (size_t v = 0; v < nviews; v++)
        print_view(&views[v], file);
    printf("file %.0f bytes: segment blobs %.0f, SQLite around them %.0f (%.1f%%; page size %lld, "
           "%lld pages, %lld free)%s\n",
           file, blobs, file - blobs, file ? 100 * (file - blobs) / file : 0, (long long)pragma[0],
           (long long)pragma[1], (long long)pragma[2],
           bad ? " (some segments of another format were skipped)" : "");
    free(views);
    return 0;
}
