/* strutil.h - small string helpers shared by the layers. Any thread. */
#pragma once
#include <stddef.h>

/* A malloc'd formatted string, or NULL when out of memory. */
__attribute__((format(printf, 1, 2))) char *str_printf(const char *fmt, ...);

/* Writes the shortest decimal text of a finite v that reads back as the
 * same double (at most 24 bytes and a NUL; buf has room for 32) and
 * returns its length. JSON answers and string conversions share it. */
size_t str_number(double v, char buf[32]);
