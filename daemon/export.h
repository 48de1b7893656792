/* export.h - the subcommands beside the daemon: lambdad export
 * (daemon/export.c) and lambdad backup (daemon/backup.c). Each takes the
 * arguments after its name (argv[0] is the subcommand) and returns the
 * exit code: 0, 1 on failure, 2 on bad usage. */
#pragma once

int export_main(int argc, char **argv);
int backup_main(int argc, char **argv);
