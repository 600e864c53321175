/* Event bus behind GET /v1/events (server-sent events). Every state change
 * is published here; subscribers get it as
 *   id: <seq>\nevent: <type>\ndata: {"seq":…,"ts":…,"type":…,"action":…,"name":…,"object":…}\n\n
 * A ring of recent events lets a client resume with Last-Event-ID. */
#ifndef NA_EVENTS_H
#define NA_EVENTS_H

#include <jansson.h>

#include <uv.h>

#include "netagent/api.h"

int na_events_init(uv_loop_t *loop, na_api_t *api, na_err_t *err);
/* Loop thread only. object is borrowed (may be NULL). */
void na_events_publish(const char *type, const char *action, const char *name, json_t *object);
/* Ends every stream (drain on SIGTERM). */
void na_events_close_all(void);
void na_events_fini(void);

#endif
