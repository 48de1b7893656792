/* log.c - the logger (see log.h). Any thread: each line is formatted into a
 * local buffer and written with one write(2), so lines never interleave. */
#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "lambdad";
static atomic_int log_max = LOG_LVL_INFO;
static int log_journal;   /* stderr goes to journald: use <N> prefixes */

static const char *const level_names[] = {
    "EMERG", "ALERT", "CRIT", "ERROR", "WARN", "NOTICE", "INFO", "DEBUG",
};

void log_init(const char *ident, int max_level)
{
    log_ident = ident;
    log_max = max_level;
    log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(int max_level) { log_max = max_level; }
int log_level(void) { return log_max; }

void log_vmsg(int level, const char *fmt, va_list ap)
{
    if (level > log_max)
        return;
    if (level < 0) level = 0;
    if (level > 7) level = 7;
    char buf[4096];
    int n;
    if (log_journal) {
        n = snprintf(buf, sizeof(buf), "<%d>", level);
    } else {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d]: %-6s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), log_ident, (int)getpid(),
                     level_names[level]);
    }
    if (n < 0)
        return;
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(buf) - 2)
        len = sizeof(buf) - 2;   /* long lines are cut, never overflow */
    while (len > 0 && buf[len - 1] == '\n')
        len--;
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

bool log_flood(const char *source, const char *text, int *held)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static struct { uint64_t key; int64_t at; int held; } seen[64];
    uint64_t key = 1469598103934665603ull;
    for (const char *p = source; *p; p++)
        key = (key ^ (unsigned char)*p) * 1099511628211ull;
    /* Digits vary (ports, counts, milliseconds): hash the text without them. */
    for (const char *p = text; *p; p++)
        if (*p < '0' || *p > '9')
            key = (key ^ (unsigned char)*p) * 1099511628211ull;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pthread_mutex_lock(&mu);
    size_t i = key % 64;
    bool flood = seen[i].key == key && now - seen[i].at < 10000;
    if (flood) {
        seen[i].held++;
    } else {
        *held = seen[i].key == key ? seen[i].held : 0;
        seen[i].key = key;
        seen[i].at = now;
        seen[i].held = 0;
    }
    pthread_mutex_unlock(&mu);
    return flood;
}
