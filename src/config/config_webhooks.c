/* config_webhooks.c: the top-level `webhooks:` list (CONTRACT §2, §6):
 * url (http or https, host resolved once here like a target's), events
 * (names of CONTRACT §6; default all), secret (required: every delivery is
 * signed), timeout, max_attempts. Every value range-checked at its
 * FILE:LINE:COL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "portcullis/events.h"
#include "portcullis/tls.h"
#include "portcullis/util.h"

#define WH_ALL_EVENTS                                                          \
    ((1u << PC_EV_CIRCUIT_OPEN) | (1u << PC_EV_CIRCUIT_CLOSED) |               \
     (1u << PC_EV_TARGET_UNHEALTHY) | (1u << PC_EV_TARGET_HEALTHY) |           \
     (1u << PC_EV_CONFIG_RELOADED) | (1u << PC_EV_CONFIG_RELOAD_FAILED))

/* Splits url into "scheme://authority" (parsed by pc_config_parse_url) and
 * the path sent; the path must be printable ASCII without a fragment. */
static int split_url(pc_webhook *w, const pc_node *at, pc_errors *err)
{
    char why[160] = "";
    const char *u = w->url, *auth = strstr(u, "://");
    size_t off = auth ? (size_t)(auth - u) + 3 : 0;
    size_t alen = strcspn(u + off, "/?#");
    const char *rest = u + off + alen;
    for (const char *p = rest; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#') {
            pc_errors_add(err, at,
                          "invalid webhook url '%s': the path must be printable "
                          "ASCII without spaces or a fragment",
                          w->url);
            return -1;
        }
    char *base = pc_xstrndup(u, off + alen);
    int rc = pc_config_parse_url(base, &w->target, why, sizeof why);
    free(base);
    if (rc == 0 && pc_config_resolve(&w->target, why, sizeof why) < 0)
        rc = -1;
    if (rc < 0) {
        pc_errors_add(err, at, "invalid webhook url '%s': %s", w->url, why);
        return -1;
    }
    if (*rest == '?' ) {
        size_t n = strlen(rest) + 2;
        w->path = pc_xmalloc(n);
        snprintf(w->path, n, "/%s", rest);
    } else {
        w->path = pc_xstrdup(*rest ? rest : "/");
    }
    return 0;
}

static void read_events(pc_webhook *w, const pc_node *seq, pc_errors *err)
{
    if (pc_node_expect_seq(seq, "events", err) < 0)
        return;
    if (seq->n == 0) {
        pc_errors_add(err, seq, "'events' must name at least one event");
        return;
    }
    w->events = 0;
    for (size_t i = 0; i < seq->n; i++) {
        char *s;
        if (pc_node_str(seq->vals[i], "events", &s, err) < 0)
            continue;
        pc_event_type t = pc_event_by_name(s);
        if (t == PC_EV_N || !((1u << t) & WH_ALL_EVENTS))
            pc_errors_add(err, seq->vals[i],
                          "unknown event '%s' (expected circuit_open, "
                          "circuit_closed, target_unhealthy, target_healthy, "
                          "config_reloaded or config_reload_failed)",
                          s);
        else
            w->events |= 1u << t;
        free(s);
    }
}

static void read_one(pc_config *c, pc_webhook *w, const pc_node *e,
                     pc_errors *err)
{
    static const char *const keys[] = {"url",     "events",       "secret",
                                       "timeout", "max_attempts", NULL};
    w->events = WH_ALL_EVENTS;
    w->timeout = 5000;
    w->max_attempts = 8;
    w->up.tls_verify = 1;
    w->up.targets = &w->target;
    w->up.ntargets = 1;
    if (pc_node_expect_map(e, "webhooks", err) < 0)
        return;
    pc_config_check_block(e, keys, NULL, "webhooks", err);
    const pc_node *v;
    if (!(v = pc_node_get(e, "url")))
        pc_errors_add(err, e, "webhook needs 'url'");
    else if (pc_config_nonempty(v, "url", &w->url, err) == 0 &&
             split_url(w, v, err) == 0) {
        w->up.name = pc_xstrdup(w->url);
        w->target.url = pc_xstrdup(w->url);
        if (w->target.tls)
            pc_tls_client_ctx_new(&w->up, v, err);
    }
    if ((v = pc_node_get(e, "events")))
        read_events(w, v, err);
    if (!(v = pc_node_get(e, "secret")))
        pc_errors_add(err, e, "webhook needs 'secret' (deliveries are signed)");
    else
        pc_config_nonempty(v, "secret", &w->secret, err);
    if ((v = pc_node_get(e, "timeout")))
        pc_config_duration(v, "timeout", 1, 600000, &w->timeout, err);
    if ((v = pc_node_get(e, "max_attempts")))
        pc_node_uint(v, "max_attempts", 1, 100, &w->max_attempts, err);
    (void)c;
}

void pc_config_read_webhooks(pc_config *c, const pc_node *seq, pc_errors *err)
{
    if (pc_node_expect_seq(seq, "webhooks", err) < 0)
        return;
    if (seq->n > 64) {
        pc_errors_add(err, seq, "at most 64 webhooks, got %zu", seq->n);
        return;
    }
    c->webhooks = pc_xcalloc(seq->n ? seq->n : 1, sizeof *c->webhooks);
    c->nwebhooks = seq->n;
    for (size_t i = 0; i < seq->n; i++)
        read_one(c, &c->webhooks[i], seq->vals[i], err);
}

void pc_config_free_webhooks(pc_config *c)
{
    for (size_t i = 0; i < c->nwebhooks; i++) {
        pc_webhook *w = &c->webhooks[i];
        pc_tls_client_ctx_free(&w->up);
        free(w->up.name);
        free(w->target.url);
        free(w->target.host);
        free(w->target.hostport);
        free(w->url);
        free(w->path);
        free(w->secret);
    }
    free(c->webhooks);
}
