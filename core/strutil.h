/* strutil.h - small string helpers shared by the layers. Any thread. */
#pragma once

/* A malloc'd formatted string, or NULL when out of memory. */
__attribute__((format(printf, 1, 2))) char *str_printf(const char *fmt, ...);
