/* archtool.h - lambdad-archive, the archive inspection tool, as a library
 * so its unit test can run the whole command line in-process.
 *
 * Any thread; no globals except getopt's (archtool_main resets optind, so
 * it can be called repeatedly, but not from two threads at once).
 */
#pragma once
#include <stddef.h>
#include <stdio.h>

/* Runs `lambdad-archive ARGS...` (argv[0] is the program name) writing
 * results to out and messages to err. Returns the exit status: 0, 1 on an
 * error (unreadable archive, write error), 2 on bad usage. */
int archtool_main(int argc, char **argv, FILE *out, FILE *err);

/* Writes one archived payload as one line of JSON: a raw CR or LF outside
 * a string (JSON whitespace) becomes a space, inside a string (never in an
 * accepted event, but cheap to keep right) its \r or \n escape. Returns 0,
 * or -EIO when out failed. */
int archtool_write_line(FILE *out, const char *payload, size_t len);
