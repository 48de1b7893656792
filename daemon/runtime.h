/* runtime.h - the running daemon: the layers built from one config, and
 * the HTTP server answering from them; start, reload (SIGHUP), stop.
 * Main thread only, except where said.
 */
#pragma once
#include <stdbool.h>

#include "batch/batch.h"
#include "config/config.h"
#include "speed/speed.h"

typedef struct lambdad lambdad;

/* What config_load cannot check, config/ touching neither librdkafka nor
 * the disk: that librdkafka takes the kafka settings, and that the archive
 * can be opened or created at archive.path. Creates nothing. Appends each
 * problem to errs in config_load's form; 0, -EINVAL or -ENOMEM. */
int lambdad_check_outside(const config *cfg, config_errors *errs);

/* Opens the archive, loads the batch views, starts the HTTP server (so
 * /healthz answers and /readyz says "recovering"), replays the archive
 * after R, then starts the batch and speed layers. Takes cfg (also on
 * failure). Logs its own failure once. */
int lambdad_start(config *cfg, lambdad **out);

/* SIGHUP: loads and checks the config at path; a bad one is refused and
 * the running one kept. Otherwise the new layers are built beside the old
 * ones, which keep answering queries (frozen: they stop consuming) until
 * the new ones have recovered, and the server then switches to them
 * without closing its socket. A change of a setting the server reads at
 * start only (serving_swap_blocker) restarts the server as well. When the
 * new config cannot start, the previous one is started again. false when
 * neither could start: the daemon has nothing left to run. */
bool lambdad_reload(lambdad *d, const char *path);

/* Stops the server (no more queries), then the layers (the open
 * transaction commits), and frees everything. Accepts NULL. */
void lambdad_stop(lambdad *d);

speed *lambdad_speed(lambdad *d);
batch *lambdad_batch(lambdad *d);
