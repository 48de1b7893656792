/* cli.h - the subcommands of the lambdad executable (main.c dispatches
 * them) and what they share with the daemon's start. */
#pragma once
#include "archive/archive.h"
#include "config/config.h"

/* lambdad import -c FILE --stream NAME [--format jsonl|csv] FILE... (argv[0]
 * is "import"). Returns the exit code. */
int import_main(int argc, char **argv);
/* lambdad export (daemon/export.c) and lambdad backup (daemon/backup.c);
 * the same convention: 0, 1 on failure, 2 on bad usage. */
int export_main(int argc, char **argv);
int backup_main(int argc, char **argv);

/* Loads the config at path for a subcommand; every problem printed to
 * stderr as "path: problem". 0, or negative with *cfg NULL. */
int cli_config_load(const char *path, config **cfg);

/* The archive's chunks are cut by batch.partition, fixed for the archive's
 * lifetime: stores it in a new archive, or checks it. 0, or a negative
 * code with *err (malloc'd). */
int check_partition_unit(const config *cfg, arch *w, char **err);
