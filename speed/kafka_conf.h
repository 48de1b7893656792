/* kafka_conf.h - the consumer's librdkafka configuration (kafka_conf.c).
 * Private to speed/. */
#pragma once
#include <librdkafka/rdkafka.h>

#include "config/config.h"

/* Builds the configuration for cfg's consumer. Returns 0 with *out (the
 * caller owns it; out may be NULL to only check), or -EINVAL with every
 * setting librdkafka refused appended to errs ("kafka.options[\"x\"]: No
 * such configuration property: \"x\""), or -ENOMEM. */
int kafka_conf_build(const config *cfg, rd_kafka_conf_t **out, config_errors *errs);
