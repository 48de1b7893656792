/* assign.c - explicit partition ownership (DESIGN.md, "Kafka").
 *
 * lambdad assigns itself every partition of its streams' topics (or the
 * ones kafka.partitions lists) with rd_kafka_incremental_assign, starting
 * each at the next offset stored in the archive, or per kafka.start where
 * none is stored. No consumer-group rebalancing is involved, so a restart
 * after kill -9 resumes at once. Metadata is refreshed every
 * kafka.metadata_refresh_ms so new partitions are picked up.
 * Runs on the speed thread; takes parts_lock only to publish new entries.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "speed/speed_int.h"

int64_t speed_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

speed_part *speed_find_part(speed *s, size_t stream_idx, int32_t partition)
{
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i].stream_idx == stream_idx && s->parts[i].partition == partition)
            return &s->parts[i];
    return NULL;
}

/* Does kafka.partitions allow this instance to own topic/partition? */
static bool owns(const config *cfg, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < cfg->nowned; i++) {
        if (strcmp(cfg->owned[i].topic, topic) != 0)
            continue;
        for (size_t k = 0; k < cfg->owned[i].npartitions; k++)
            if (cfg->owned[i].partitions[k] == partition)
                return true;
        return false;
    }
    return true;   /* topic not listed: all its partitions */
}

static int add_part(speed *s, size_t stream_idx, int32_t partition, int64_t next_offset)
{
    if (s->nparts == s->parts_cap) {
        size_t ncap = s->parts_cap ? s->parts_cap * 2 : 16;
        speed_part *np = malloc(ncap * sizeof(*np));
        if (!np)
            return -ENOMEM;
        /* Copy then swap under the lock: readers never see a freed array. */
        if (s->nparts)
            memcpy(np, s->parts, s->nparts * sizeof(*np));
        pthread_mutex_lock(&s->parts_lock);
        speed_part *old = s->parts;
        s->parts = np;
        s->parts_cap = ncap;
        pthread_mutex_unlock(&s->parts_lock);
        free(old);
    }
    pthread_mutex_lock(&s->parts_lock);
    s->parts[s->nparts++] = (speed_part){
        .stream_idx = stream_idx, .partition = partition, .next_offset = next_offset,
        .taken_offset = next_offset,
        .high_watermark = -1, .dirty = false,
    };
    pthread_mutex_unlock(&s->parts_lock);
    return 0;
}

/* Logs a missing topic once until it appears. */
static void note_topic_state(speed *s, size_t si, const char *problem)
{
    char **last_problem = s->topic_problem;
    if (problem && (!last_problem[si] || strcmp(last_problem[si], problem) != 0)) {
        log_warn("Kafka topic '%s' of stream '%s': %s; will look again every %d ms",
                 s->cfg->streams[si].topic, s->cfg->streams[si].name, problem,
                 s->cfg->metadata_refresh_ms);
        free(last_problem[si]);
        last_problem[si] = strdup(problem);
    } else if (!problem && last_problem[si]) {
        free(last_problem[si]);
        last_problem[si] = NULL;
    }
}

void speed_refresh_assignment(speed *s, int timeout_ms)
{
    const config *cfg = s->cfg;
    rd_kafka_topic_partition_list_t *add = rd_kafka_topic_partition_list_new(8);

    for (size_t si = 0; si < cfg->nstreams; si++) {
        const char *topic = cfg->streams[si].topic;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(s->rk, topic, NULL);
        if (!rkt)
            continue;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(s->rk, 0, rkt, &md, timeout_ms);
        if (err) {
            note_topic_state(s, si, rd_kafka_err2str(err));
            rd_kafka_topic_destroy(rkt);
            continue;
        }
        s->last_contact_ms = speed_now_ms();   /* a broker answered */
        const struct rd_kafka_metadata_topic *mt = md->topic_cnt == 1 ? &md->topics[0] : NULL;
        if (!mt || mt->err) {
            note_topic_state(s, si, mt ? rd_kafka_err2str(mt->err) : "no metadata");
        } else {
            note_topic_state(s, si, NULL);
            for (int p = 0; p < mt->partition_cnt; p++) {
                int32_t part = mt->partitions[p].id;
                if (speed_find_part(s, si, part) || !owns(cfg, topic, part))
                    continue;
                int64_t next;
                int64_t start;
                if (arch_get_offset(s->w, topic, part, &next) == 0) {
                    start = next;
                    log_info("Assigning %s [%d] at archived offset %lld", topic, (int)part,
                             (long long)next);
                } else {
                    next = -1;
                    start = strcmp(cfg->start, "latest") == 0 ? RD_KAFKA_OFFSET_END
                                                              : RD_KAFKA_OFFSET_BEGINNING;
                    log_info("Assigning %s [%d] from the %s offset (none archived)", topic,
                             (int)part, cfg->start);
                }
                if (add_part(s, si, part, next) < 0) {
                    log_error("Out of memory assigning %s [%d]", topic, (int)part);
                    continue;
                }
                rd_kafka_topic_partition_list_add(add, topic, part)->offset = start;
            }
        }
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }

    if (add->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(s->rk, add);
        if (e) {
            log_error("Failed to assign %d Kafka partition(s): %s", add->cnt,
                      rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    }
    rd_kafka_topic_partition_list_destroy(add);
}
