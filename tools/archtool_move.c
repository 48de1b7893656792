/* archtool_move.c - lambdad-archive extract and drop: moving Kafka
 * partitions to another instance (README "Moving a partition to a new
 * instance"; archive/move.c does the work).
 *
 *   lambdad-archive extract --partition TOPIC:P[,P...] SRC DST
 *   lambdad-archive drop --partition TOPIC:P[,P...] ARCHIVE
 *
 * extract builds the new archive under a hidden temporary name beside DST
 * and links it to DST only when complete (link fails rather than replace
 * a DST that appeared meanwhile), so DST is never half an archive. drop
 * takes the archive lock the daemon holds for its lifetime (refusing while
 * one runs) and removes the views file before it deletes anything: views
 * built with the dropped events must not outlive them, and a views file
 * that is absent is rebuilt from the archive at the next start (a crash in
 * between leaves the archive whole and the views rebuilt: run drop again).
 *
 * Runs on the caller's thread; the only shared state is getopt's.
 */
#include "tools/archtool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "core/strutil.h"
#include "daemon/archlock.h"

/* The partitions of the command line; the topics are the list's own. */
typedef struct {
    arch_part *p;
    size_t n, cap;
} part_list;

static void part_list_free(part_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free((char *)l->p[i].topic);
    free(l->p);
}

static bool topic_ok(const char *t, size_t len)
{
    if (!len || len > 249)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", t[i]))
            return false;
    return true;
}

/* Adds "TOPIC:P[,P...]". 0, -EINVAL (bad text) or -ENOMEM. */
static int parse_parts(const char *arg, part_list *l)
{
    const char *colon = strrchr(arg, ':');
    size_t tlen = colon ? (size_t)(colon - arg) : 0;
    if (!colon || !topic_ok(arg, tlen) || !colon[1])
        return -EINVAL;
    for (const char *s = colon + 1;;) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || v < 0 || v > INT32_MAX || (*end && *end != ','))
            return -EINVAL;
        bool dup = false;
        for (size_t i = 0; i < l->n; i++)
            dup |= l->p[i].partition == v && strlen(l->p[i].topic) == tlen &&
                   !memcmp(l->p[i].topic, arg, tlen);
        if (!dup) {
            if (l->n == l->cap) {
                size_t cap = l->cap ? 2 * l->cap : 8;
                arch_part *p = realloc(l->p, cap * sizeof *p);
                if (!p)
                    return -ENOMEM;
                l->p = p;
                l->cap = cap;
            }
            char *topic = strndup(arg, tlen);
            if (!topic)
                return -ENOMEM;
            l->p[l->n++] = (arch_part){ .topic = topic, .partition = (int32_t)v };
        }
        if (!*end)
            return 0;
        s = end + 1;
    }
}

/* "web:2,3; clicks:0" of the list, for the summary lines. */
static void print_parts(FILE *f, const part_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        bool same = i > 0 && !strcmp(l->p[i - 1].topic, l->p[i].topic);
        if (same)
            fprintf(f, ",%d", (int)l->p[i].partition);
        else
            fprintf(f, "%s%s:%d", i ? "; " : "", l->p[i].topic, (int)l->p[i].partition);
    }
}

/* The options of both commands; the remaining arguments from *first.
 * -1 when --help was printed, 2 on bad usage (said), 0. */
static int parse_args(const char *cmd, int argc, char **argv, part_list *l, FILE *out,
                      FILE *err, int *first)
{
    static const struct option longopts[] = {
        {"partition", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "+p:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': {
            int r = parse_parts(optarg, l);
            if (r == -ENOMEM) {
                fprintf(err, PROG ": out of memory\n");
                return 1;
            }
            if (r < 0) {
                fprintf(err, PROG ": --partition: expected TOPIC:P[,P...] (a Kafka topic, then "
                             "partition numbers >= 0), got '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'h': archtool_usage(out); return -1;
        default:
            fprintf(err, PROG ": %s: bad option '%s' (see --help)\n", cmd, argv[optind - 1]);
            return 2;
        }
    }
    if (!l->n) {
        fprintf(err, PROG ": %s: --partition is required\n", cmd);
        return 2;
    }
    *first = optind;
    return 0;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

/* Removes path and its -wal and -shm (the WAL first: a -wal left beside
 * a new file of the same name would be replayed into it). 0 or -errno. */
static int remove_db(const char *path)
{
    static const char *const suffix[] = {"-wal", "-shm", ""};
    for (size_t i = 0; i < 3; i++) {
        char *p = str_printf("%s%s", path, suffix[i]);
        if (!p)
            return -ENOMEM;
        int r = unlink(p) == 0 || errno == ENOENT ? 0 : -errno;
        free(p);
        if (r < 0)
            return r;
    }
    return 0;
}

/* fsync of path (a file or a directory). 0 or -errno. */
static int sync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return r;
}

/* DST must be new: the archive and every file lambdad keeps beside it. */
static int check_new(const char *dst, FILE *err)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-views"};
    for (size_t i = 0; i < 4; i++) {
        char *p = str_printf("%s%s", dst, suffix[i]);
        bool there = !p || exists(p);
        if (there)
            fprintf(err, PROG ": extract: %s already exists (extract makes a new archive: "
                         "give a path where none is)\n", p ? p : dst);
        free(p);
        if (there)
            return 1;
    }
    return 0;
}

/* Closes dst (the last connection: SQLite checkpoints and removes its
 * WAL), syncs it and links it to its final name. 0 or 1 (said). */
static int publish(arch *dst, const char *tmp, const char *final, FILE *err)
{
    arch_close(dst);
    char *wal = str_printf("%s-wal", tmp);
    int r = !wal ? -ENOMEM : exists(wal) ? -EBUSY : sync_path(tmp);
    free(wal);
    if (r == 0 && link(tmp, final) < 0)
        r = -errno;
    if (r < 0) {
        fprintf(err, PROG ": extract: cannot create %s: %s\n", final,
                r == -EBUSY ? "the new archive's WAL was not checkpointed" : strerror(-r));
        return 1;
    }
    unlink(tmp);
    char *copy = strdup(final);
    if (copy)
        sync_path(dirname(copy));   /* best effort: the link is made */
    free(copy);
    return 0;
}

static int extract(const part_list *l, const char *srcpath, const char *dstpath, FILE *out,
                   FILE *err)
{
    if (check_new(dstpath, err))
        return 1;
    char *copy = strdup(dstpath), *base = strdup(dstpath);
    char *tmp = copy && base ? str_printf("%s/.%s.extract-%d", dirname(copy), basename(base),
                                          (int)getpid()) : NULL;
    free(copy);
    free(base);
    arch *src = NULL, *dst = NULL;
    char *msg = NULL;
    int rc = 1;
    if (!tmp) {
        fprintf(err, PROG ": out of memory\n");
        goto out;
    }
    remove_db(tmp);   /* a temporary left by a crash of this same pid */
    int r = arch_open(srcpath, ARCH_READONLY, 3, &src, &msg);
    if (r < 0) {
        fprintf(err, PROG ": %s: %s\n", srcpath, msg ? msg : strerror(-r));
        goto out;
    }
    /* level 3: archive.compression_level's default (compaction recompresses) */
    if ((r = arch_open(tmp, 0, 3, &dst, &msg)) < 0) {
        fprintf(err, PROG ": extract: cannot create the new archive beside %s: %s\n", dstpath,
                msg ? msg : strerror(-r));
        goto out;
    }
    arch_move_stats st;
    if ((r = arch_extract(src, dst, l->p, l->n, &st, &msg)) < 0) {
        fprintf(err, PROG ": extract: %s\n", msg ? msg : strerror(-r));
        goto out;
    }
    /* the summary names the next offsets, which the new lambdad resumes at */
    fprintf(out, "%s: ", dstpath);
    print_parts(out, l);
    fprintf(out, " from %s: %" PRId64 " event%s in %" PRId64 " chunk%s, %" PRId64 " reject%s;"
            " next offsets", srcpath, st.events, st.events == 1 ? "" : "s", st.chunks,
            st.chunks == 1 ? "" : "s", st.rejects, st.rejects == 1 ? "" : "s");
    for (size_t i = 0; i < l->n; i++) {
        int64_t next = 0;
        arch_get_offset(dst, l->p[i].topic, l->p[i].partition, &next);
        fprintf(out, " %s:%d=%" PRId64, l->p[i].topic, (int)l->p[i].partition, next);
    }
    fputc('\n', out);
    rc = publish(dst, tmp, dstpath, err);
    dst = NULL;
    if (rc == 0 && fflush(out) != 0)
        rc = 1;
out:
    arch_close(dst);
    arch_close(src);
    if (tmp)
        remove_db(tmp);   /* after publish: only the temporary name goes */
    free(tmp);
    free(msg);
    return rc;
}

int archtool_extract(int argc, char **argv, FILE *out, FILE *err)
{
    part_list l = {0};
    int first = 0;
    int rc = parse_args("extract", argc, argv, &l, out, err, &first);
    if (rc == 0 && argc - first != 2) {
        fprintf(err, PROG ": extract: expected SRC and DST\n");
        rc = 2;
    }
    if (rc == 0)
        rc = extract(&l, argv[first], argv[first + 1], out, err);
    part_list_free(&l);
    return rc < 0 ? 0 : rc;
}

/* Removes path-views and its WAL: sets *removed when there was one. */
static int remove_views(const char *path, bool *removed, FILE *err)
{
    char *views = str_printf("%s-views", path);
    if (!views) {
        fprintf(err, PROG ": out of memory\n");
        return 1;
    }
    *removed = exists(views);
    int r = remove_db(views);
    if (r < 0)
        fprintf(err, PROG ": drop: cannot remove the views file %s: %s\n", views, strerror(-r));
    free(views);
    return r < 0;
}

static int drop(const part_list *l, const char *path, FILE *out, FILE *err)
{
    struct stat sb;
    if (stat(path, &sb) < 0) {
        fprintf(err, PROG ": %s: %s\n", path, errno == ENOENT ? "archive does not exist"
                                                               : strerror(errno));
        return 1;
    }
    archlock lk;
    int r = archlock_take(path, true, &lk);
    if (r == -EWOULDBLOCK) {
        fprintf(err, PROG ": drop: %s is in use by a running lambdad (pid %s holds %s): stop it "
                     "first\n", path, lk.holder[0] ? lk.holder : "unknown", lk.path);
        return 1;
    }
    if (r < 0) {
        fprintf(err, PROG ": drop: cannot take the archive lock %s: %s\n", lk.path,
                strerror(-r));
        return 1;
    }
    arch *a = NULL;
    char *msg = NULL;
    int rc = 1;
    bool views = false;
    arch_move_stats st;
    if ((r = arch_open(path, 0, 3, &a, &msg)) < 0)
        fprintf(err, PROG ": %s: %s\n", path, msg ? msg : strerror(-r));
    else if ((r = arch_parts_check(a, l->p, l->n, &msg)) < 0)
        fprintf(err, PROG ": drop: %s\n", msg ? msg : strerror(-r));
    else if (remove_views(path, &views, err))
        r = -EIO;
    else if ((r = arch_drop_parts(a, l->p, l->n, &st, &msg)) < 0)
        fprintf(err, PROG ": drop: %s\n", msg ? msg : strerror(-r));
    if (r == 0) {
        fprintf(out, "%s: dropped ", path);
        print_parts(out, l);
        fprintf(out, ": %" PRId64 " event%s in %" PRId64 " chunk%s, %" PRId64 " reject%s, %" PRId64
                " next offset%s", st.events, st.events == 1 ? "" : "s", st.chunks,
                st.chunks == 1 ? "" : "s", st.rejects, st.rejects == 1 ? "" : "s", st.offsets,
                st.offsets == 1 ? "" : "s");
        if (st.damage_records)
            fprintf(out, ", %" PRId64 " damaged-chunk record%s", st.damage_records,
                    st.damage_records == 1 ? "" : "s");
        if (views)
            fprintf(out, "; removed %s-views (lambdad rebuilds its views from the archive at "
                         "its next start)", path);
        fputc('\n', out);
        rc = fflush(out) == 0 ? 0 : 1;
    }
    arch_close(a);
    archlock_release(&lk);
    free(msg);
    return rc;
}

int archtool_drop(int argc, char **argv, FILE *out, FILE *err)
{
    part_list l = {0};
    int first = 0;
    int rc = parse_args("drop", argc, argv, &l, out, err, &first);
    if (rc == 0 && argc - first != 1) {
        fprintf(err, PROG ": drop: expected one ARCHIVE\n");
        rc = 2;
    }
    if (rc == 0)
        rc = drop(&l, argv[first], out, err);
    part_list_free(&l);
    return rc < 0 ? 0 : rc;
}
