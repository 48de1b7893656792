/* strutil.c - small string helpers (see strutil.h). */
#include "core/strutil.h"

#include <stdarg.h>
#include <stdio.h>

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
