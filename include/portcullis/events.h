/* events.h: the one place where operational events are reported
 * (proxy/events.c): circuit and health transitions today, the webhook
 * configuration reloads (main.c), the webhook events of CONTRACT §6. Every event is logged here (warn for a
 * circuit opening or a target going unhealthy, info for a recovery), then
 * handed to the hook, if one is installed (the webhook sender will be;
 * it must not block: it is called on whatever thread saw the event, a
 * worker's included). Callable from any thread. */
#ifndef PORTCULLIS_EVENTS_H
#define PORTCULLIS_EVENTS_H

#include "portcullis/breaker.h"

typedef enum {
    PC_EV_CIRCUIT_OPEN,      /* "circuit_open" */
    PC_EV_CIRCUIT_HALF_OPEN, /* "circuit_half_open" (logged; no webhook
                                event in CONTRACT §6) */
    PC_EV_CIRCUIT_CLOSED,    /* "circuit_closed" */
    PC_EV_TARGET_UNHEALTHY,  /* "target_unhealthy" */
    PC_EV_TARGET_HEALTHY,    /* "target_healthy" */
    PC_EV_CONFIG_RELOADED,   /* "config_reloaded" (main.c, SIGHUP applied;
                                none for the first load) */
    PC_EV_CONFIG_RELOAD_FAILED, /* "config_reload_failed" (main.c) */
    PC_EV_N
} pc_event_type;

/* The event's name as CONTRACT §6 spells it. */
const char *pc_event_name(pc_event_type t);

/* The event named s (CONTRACT §6 spelling), or PC_EV_N. */
pc_event_type pc_event_by_name(const char *s);

/* data: a short free-text detail ("5 consecutive failures", "probe
 * failed", "check: connect refused"), or NULL. */
void pc_event_emit(pc_event_type t, const char *upstream, const char *target,
                   const char *data);

/* The event of a state transition (PC_EV_N for PC_TR_NONE). */
pc_event_type pc_event_of(pc_transition tr);

typedef void (*pc_event_hook)(pc_event_type t, const char *upstream,
                              const char *target, const char *data);
/* Installs (NULL: removes) the hook; set before any thread may emit. */
void pc_event_set_hook(pc_event_hook hook);

#endif
