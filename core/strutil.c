/* strutil.c - small string helpers (see strutil.h). */
#include "core/strutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

char *str_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

size_t str_number(double v, char buf[32])
{
    int n = 0;
    /* %.17g always round-trips; shorter forms read better when they do */
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return (size_t)n;
}
