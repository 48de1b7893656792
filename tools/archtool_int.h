/* archtool_int.h - the commands of lambdad-archive across its files
 * (tools/ private): archtool.c reads archives, archtool_move.c moves
 * partitions between them. */
#pragma once
#include <stdio.h>

#include "tools/archtool.h"

#define PROG "lambdad-archive"

/* The --help text. */
void archtool_usage(FILE *f);

/* The commands, with argv[0] the command's name; exit statuses as
 * archtool_main's. */
int archtool_extract(int argc, char **argv, FILE *out, FILE *err);
int archtool_drop(int argc, char **argv, FILE *out, FILE *err);
