/* isrc.h - a file read as its decompressed bytes.
 *
 * gzip (also several members, as pigz and `cat a.gz b.gz` write) and zstd
 * (also several frames) are recognized by their magic bytes, anything else
 * is read as it is. The file is read from its current position on, and
 * isrc_rewind goes back there for a second pass (so it must be seekable).
 * One thread at a time.
 */
#pragma once
#include <stdint.h>
#include <sys/types.h>

typedef struct isrc isrc;

typedef enum { ISRC_PLAIN, ISRC_GZIP, ISRC_ZSTD } isrc_codec;

/* Reads fd (borrowed: the caller closes it after isrc_free). 0, or
 * -errno with *errmsg (malloc'd). */
int isrc_open(int fd, isrc **out, char **errmsg);
void isrc_free(isrc *s);   /* accepts NULL */
isrc_codec isrc_codec_of(const isrc *s);
/* Up to n decompressed bytes: their count, 0 at the end, or -errno with
 * *errmsg (malloc'd): a read error, or damaged compressed data
 * ("gzip data is damaged: invalid distance too far back"; a compressed
 * file that ends early is damaged too). */
ssize_t isrc_read(isrc *s, void *buf, size_t n, char **errmsg);
/* Back to the first byte, for another pass. 0 or -errno. */
int isrc_rewind(isrc *s);
/* File bytes consumed so far (compressed bytes for a compressed file), for
 * progress against the file's size. */
uint64_t isrc_file_bytes(const isrc *s);
