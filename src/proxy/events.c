/* events.c: pc_event_emit, the single reporting point for circuit and
 * health transitions (see events.h). */
#include "portcullis/events.h"

#include <stdatomic.h>
#include <string.h>

#include "portcullis/errlog.h"

static _Atomic(pc_event_hook) hook;

const char *pc_event_name(pc_event_type t)
{
    static const char *const names[PC_EV_N] = {
        [PC_EV_CIRCUIT_OPEN] = "circuit_open",
        [PC_EV_CIRCUIT_HALF_OPEN] = "circuit_half_open",
        [PC_EV_CIRCUIT_CLOSED] = "circuit_closed",
        [PC_EV_TARGET_UNHEALTHY] = "target_unhealthy",
        [PC_EV_TARGET_HEALTHY] = "target_healthy",
        [PC_EV_CONFIG_RELOADED] = "config_reloaded",
        [PC_EV_CONFIG_RELOAD_FAILED] = "config_reload_failed",
    };
    return (unsigned)t < PC_EV_N ? names[t] : "unknown";
}

pc_event_type pc_event_by_name(const char *s)
{
    for (int t = 0; t < PC_EV_N; t++)
        if (!strcmp(pc_event_name((pc_event_type)t), s))
            return (pc_event_type)t;
    return PC_EV_N;
}

pc_event_type pc_event_of(pc_transition tr)
{
    switch (tr) {
    case PC_TR_OPENED:
    case PC_TR_REOPENED:
        return PC_EV_CIRCUIT_OPEN;
    case PC_TR_HALF_OPENED:
        return PC_EV_CIRCUIT_HALF_OPEN;
    case PC_TR_CLOSED:
        return PC_EV_CIRCUIT_CLOSED;
    case PC_TR_UNHEALTHY:
        return PC_EV_TARGET_UNHEALTHY;
    case PC_TR_HEALTHY:
        return PC_EV_TARGET_HEALTHY;
    default:
        return PC_EV_N;
    }
}

void pc_event_emit(pc_event_type t, const char *upstream, const char *target,
                   const char *data)
{
    if ((unsigned)t >= PC_EV_N)
        return;
    pc_log_level lvl = t == PC_EV_CIRCUIT_OPEN || t == PC_EV_TARGET_UNHEALTHY
                           ? PC_LOG_WARN
                           : PC_LOG_INFO;
    /* main.c logs the reload itself, in its own words. */
    if (t != PC_EV_CONFIG_RELOADED && t != PC_EV_CONFIG_RELOAD_FAILED)
        pc_log(lvl, "event %s: upstream %s target %s%s%s", pc_event_name(t),
           upstream ? upstream : "-", target ? target : "-", data ? ": " : "",
           data ? data : "");
    pc_event_hook h = atomic_load_explicit(&hook, memory_order_acquire);
    if (h)
        h(t, upstream, target, data);
}

void pc_event_set_hook(pc_event_hook h)
{
    atomic_store_explicit(&hook, h, memory_order_release);
}
