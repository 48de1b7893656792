/* log.h - the one logger of the daemon and tools.
 *
 * Lines go to stderr as "2026-11-23T10:00:00.123Z lambdad[pid]: LEVEL msg".
 * Under systemd (JOURNAL_STREAM set) lines carry a "<N>" priority prefix
 * instead of the timestamp, which journald understands. Thread-safe: one
 * write(2) per line. Library code returns errors; callers log once.
 */
#pragma once
#include <stdarg.h>
#include <stdbool.h>

enum { LOG_LVL_ERR = 3, LOG_LVL_WARN = 4, LOG_LVL_NOTICE = 5, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

void log_init(const char *ident, int max_level);
void log_set_level(int max_level);
int log_level(void);
__attribute__((format(printf, 2, 3))) void log_msg(int level, const char *fmt, ...);
void log_vmsg(int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* For lines a library repeats in bursts (librdkafka while a broker is down,
 * libmicrohttpd refusing connections): true when a line of the same source
 * and text, digits aside, was let through in the last 10 s, so the caller
 * drops it; false when the caller logs it, with *held the number of such
 * lines dropped since the last one logged. Any thread. */
bool log_flood(const char *source, const char *text, int *held);

#define log_error(...)  log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)  log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
