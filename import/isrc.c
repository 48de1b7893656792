/* isrc.c - see isrc.h. zlib's inflate with automatic gzip header
 * detection (windowBits 15 + 32), libzstd's streaming decompression. */
#include "import/isrc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "core/strutil.h"

#define IN_SIZE (256 * 1024)

struct isrc {
    int fd;
    off_t origin;            /* where the file was when opened */
    isrc_codec codec;
    uint8_t *in;             /* compressed bytes read, [in_pos, in_len) not used yet */
    size_t in_pos, in_len;
    bool in_eof;
    uint64_t file_bytes;
    z_stream z;
    bool z_init, z_member_done;
    ZSTD_DCtx *zd;
    bool zd_done;            /* the last frame is complete and flushed */
};

static int fail(char **errmsg, int r, const char *what)
{
    *errmsg = str_printf("%s", what);
    return r;
}

/* More file bytes into s->in (keeping those not used yet). 0 or -errno. */
static int fill(isrc *s, char **errmsg)
{
    if (s->in_pos > 0) {
        memmove(s->in, s->in + s->in_pos, s->in_len - s->in_pos);
        s->in_len -= s->in_pos;
        s->in_pos = 0;
    }
    while (s->in_len < IN_SIZE && !s->in_eof) {
        ssize_t n = read(s->fd, s->in + s->in_len, IN_SIZE - s->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            *errmsg = str_printf("read error: %s", strerror(e));
            return -e;
        }
        if (n == 0)
            s->in_eof = true;
        s->in_len += (size_t)n;
        s->file_bytes += (uint64_t)n;
        if (n > 0)
            break;
    }
    return 0;
}

static int start(isrc *s, char **errmsg)
{
    s->in_pos = s->in_len = 0;
    s->in_eof = false;
    s->file_bytes = 0;
    int r = fill(s, errmsg);
    if (r < 0)
        return r;
    const uint8_t *m = s->in;
    if (s->in_len >= 2 && m[0] == 0x1f && m[1] == 0x8b)
        s->codec = ISRC_GZIP;
    else if (s->in_len >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
        s->codec = ISRC_ZSTD;
    else
        s->codec = ISRC_PLAIN;
    if (s->codec == ISRC_GZIP) {
        if (s->z_init)
            inflateEnd(&s->z);
        memset(&s->z, 0, sizeof(s->z));
        if (inflateInit2(&s->z, 15 + 32) != Z_OK)
            return fail(errmsg, -ENOMEM, "out of memory");
        s->z_init = true;
        s->z_member_done = false;
    } else if (s->codec == ISRC_ZSTD) {
        if (!s->zd && !(s->zd = ZSTD_createDCtx()))
            return fail(errmsg, -ENOMEM, "out of memory");
        ZSTD_DCtx_reset(s->zd, ZSTD_reset_session_only);
        s->zd_done = false;
    }
    return 0;
}

int isrc_open(int fd, isrc **out, char **errmsg)
{
    *out = NULL;
    *errmsg = NULL;
    isrc *s = calloc(1, sizeof(*s));
    if (!s || !(s->in = malloc(IN_SIZE))) {
        free(s);
        return fail(errmsg, -ENOMEM, "out of memory");
    }
    s->fd = fd;
    s->origin = lseek(fd, 0, SEEK_CUR);
    int r = start(s, errmsg);
    if (r < 0) {
        isrc_free(s);
        return r;
    }
    *out = s;
    return 0;
}

void isrc_free(isrc *s)
{
    if (!s)
        return;
    if (s->z_init)
        inflateEnd(&s->z);
    ZSTD_freeDCtx(s->zd);
    free(s->in);
    free(s);
}

isrc_codec isrc_codec_of(const isrc *s)
{
    return s->codec;
}

uint64_t isrc_file_bytes(const isrc *s)
{
    return s->file_bytes;
}

int isrc_rewind(isrc *s)
{
    if (s->origin < 0 || lseek(s->fd, s->origin, SEEK_SET) < 0)
        return s->origin < 0 ? -ESPIPE : -errno;
    char *err = NULL;
    int r = start(s, &err);
    free(err);
    return r;
}

/* More file bytes when every one read is used: 1 when there are none
 * left (the file is read to its end), 0, or a negative code. */
static int top_up(isrc *s, char **errmsg)
{
    if (s->in_pos == s->in_len && !s->in_eof) {
        int r = fill(s, errmsg);
        if (r < 0)
            return r;
    }
    return s->in_pos == s->in_len && s->in_eof;
}

/* Decompressors may hold output back for a full buffer: each is called
 * until it gives bytes, also once the file is read to its end; a stream
 * that is not complete then is a truncated file. */
static ssize_t read_gzip(isrc *s, void *buf, size_t n, char **errmsg)
{
    for (;;) {
        int r = top_up(s, errmsg);
        if (r < 0)
            return r;
        bool no_input = r == 1;
        if (s->z_member_done) {
            if (no_input)
                return 0;
            inflateReset(&s->z);   /* another member follows */
            s->z_member_done = false;
        }
        s->z.next_in = s->in + s->in_pos;
        s->z.avail_in = (uInt)(s->in_len - s->in_pos);
        s->z.next_out = buf;
        s->z.avail_out = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
        int zr = inflate(&s->z, Z_NO_FLUSH);
        s->in_pos = s->in_len - s->z.avail_in;
        size_t got = (size_t)((uint8_t *)s->z.next_out - (uint8_t *)buf);
        if (zr == Z_STREAM_END)
            s->z_member_done = true;
        else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            *errmsg = str_printf("gzip data is damaged: %s", s->z.msg ? s->z.msg : "inflate failed");
            return -EBADMSG;
        }
        if (got > 0)
            return (ssize_t)got;
        if (zr != Z_STREAM_END && no_input)
            return fail(errmsg, -EBADMSG, "gzip data ends early (the file is truncated)");
    }
}

static ssize_t read_zstd(isrc *s, void *buf, size_t n, char **errmsg)
{
    for (;;) {
        int r = top_up(s, errmsg);
        if (r < 0)
            return r;
        bool no_input = r == 1;
        if (no_input && s->zd_done)
            return 0;   /* (another call would wait for a next frame) */
        ZSTD_inBuffer ib = {s->in, s->in_len, s->in_pos};
        ZSTD_outBuffer ob = {buf, n, 0};
        size_t zr = ZSTD_decompressStream(s->zd, &ob, &ib);
        s->in_pos = ib.pos;
        if (ZSTD_isError(zr)) {
            *errmsg = str_printf("zstd data is damaged: %s", ZSTD_getErrorName(zr));
            return -EBADMSG;
        }
        s->zd_done = zr == 0;
        if (ob.pos > 0)
            return (ssize_t)ob.pos;
        if (no_input && !s->zd_done)
            return fail(errmsg, -EBADMSG, "zstd data ends early (the file is truncated)");
    }
}

ssize_t isrc_read(isrc *s, void *buf, size_t n, char **errmsg)
{
    *errmsg = NULL;
    if (n == 0)
        return 0;
    if (s->codec == ISRC_GZIP)
        return read_gzip(s, buf, n, errmsg);
    if (s->codec == ISRC_ZSTD)
        return read_zstd(s, buf, n, errmsg);
    if (s->in_pos == s->in_len) {
        int r = fill(s, errmsg);
        if (r < 0)
            return r;
    }
    size_t k = s->in_len - s->in_pos;
    if (k > n)
        k = n;
    memcpy(buf, s->in + s->in_pos, k);
    s->in_pos += k;
    return (ssize_t)k;
}
