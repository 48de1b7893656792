/* kafka_conf.c - the consumer's librdkafka configuration, built in one
 * place: lambdad's own defaults, then kafka.brokers and kafka.group_id,
 * then kafka.options (which may override the defaults).
 *
 * The consumer (speed.c) builds it to create its handle; the config check
 * (lambdad --check-config, the start and a SIGHUP reload) builds it on a
 * scratch object, so an option librdkafka does not know or whose value it
 * refuses is reported with its JSON path before anything starts. Only
 * rd_kafka_conf_set() runs here: checks librdkafka makes across options
 * when a handle is created are left to the consumer.
 *
 * Pure: runs on any thread, touches nothing shared.
 */
#include "speed/speed.h"
#include "speed/kafka_conf.h"

#include <errno.h>

/* lambdad's defaults; kafka.options override them. */
static const char *const lambdad_defaults[][2] = {
    {"enable.auto.commit", "false"},
    {"enable.auto.offset.store", "false"},
    {"enable.partition.eof", "false"},
    {"auto.offset.reset", "earliest"},    /* archived offset gone: resume at the oldest */
    {"queued.min.messages", "1000000"},   /* 4x faster backlog reads (DESIGN.md) */
    {"client.id", "lambdad"},
};

/* Sets k=v; a refusal is reported at parent.key with librdkafka's text.
 * Returns false after an allocation failure. */
static bool set(rd_kafka_conf_t *conf, const char *k, const char *v, const char *parent,
                const char *key, config_errors *errs)
{
    char why[512];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof(why)) == RD_KAFKA_CONF_OK)
        return true;
    if (parent)
        return config_error_at(errs, parent, key, "%s", why) == 0;
    /* one of lambdad's defaults: this librdkafka does not take it */
    return config_error_at(errs, NULL, "kafka", "lambdad's default option %s=%s: %s", k, v,
                           why) == 0;
}

int kafka_conf_build(const config *cfg, rd_kafka_conf_t **out, config_errors *errs)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf)
        return -ENOMEM;
    size_t n0 = errs->n;
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof(lambdad_defaults) / sizeof(lambdad_defaults[0]); i++)
        ok = set(conf, lambdad_defaults[i][0], lambdad_defaults[i][1], NULL, NULL, errs);
    ok = ok && set(conf, "bootstrap.servers", cfg->brokers, "kafka", "brokers", errs);
    ok = ok && set(conf, "group.id", cfg->group_id, "kafka", "group_id", errs);
    /* every option is tried, so one check lists every bad one */
    for (size_t i = 0; ok && i < cfg->noptions; i++)
        ok = set(conf, cfg->options[i].key, cfg->options[i].value, "kafka.options",
                 cfg->options[i].key, errs);
    if (!ok || errs->n > n0 || !out) {
        rd_kafka_conf_destroy(conf);
        return !ok ? -ENOMEM : errs->n > n0 ? -EINVAL : 0;
    }
    *out = conf;   /* the caller owns it now */
    return 0;
}

int speed_check_config(const config *cfg, config_errors *errs)
{
    return kafka_conf_build(cfg, NULL, errs);
}
