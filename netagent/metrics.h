/* Prometheus text exposition behind GET /metrics: request counts by route
 * and code, a latency histogram, process uptime, plus module collectors. */
#ifndef NA_METRICS_H
#define NA_METRICS_H

#include <stdio.h>

#include "netagent/api.h"

int na_metrics_init(na_api_t *api, na_err_t *err);
/* A collector appends complete metric families (with # HELP/# TYPE). */
typedef void (*na_metrics_collect_fn)(FILE *out, void *ud);
void na_metrics_add_collector(na_metrics_collect_fn fn, void *ud);
void na_metrics_fini(void);

#endif
