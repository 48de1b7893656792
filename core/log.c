/* log.c - the logger (see log.h). Any thread: each line is formatted into a
 * local buffer and written with one write(2), so lines never interleave. */
#include "core/log.h"

#include <stdatomic.h>
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
