/* cli.c - what the subcommands share (see cli.h). */
#include "daemon/cli.h"

#include <stdio.h>

int cli_config_load(const char *path, config **cfg)
{
    config_errors errs = {0};
    int r = config_load(path, cfg, &errs);
    if (r < 0) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s: %s\n", path, errs.items[i]);
        if (errs.n == 0)
            fprintf(stderr, "%s: out of memory\n", path);
    }
    config_errors_clear(&errs);
    return r;
}
