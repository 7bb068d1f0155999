/* webhook.c: outbound webhook deliveries (CONTRACT §6); see webhook.h for
 * the design. The thread's loop never runs request work and no worker
 * ever waits on it. */
#include "portcullis/webhook.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool_int.h"
#include "portcullis/errlog.h"
#include "portcullis/events.h"
#include "portcullis/metrics.h"
#include "portcullis/probe.h"
#include "portcullis/sock.h"
#include "portcullis/util.h"

/* ---- pure parts -------------------------------------------------------- */

uint64_t pc_webhook_backoff_ms(unsigned attempt, double r)
{
    uint64_t base = 1000;
    for (unsigned i = 1; i < attempt && base < 300000; i++)
        base *= 2;
    if (base > 300000)
        base = 300000;
    if (r < 0)
        r = 0;
    if (r >= 1)
        r = 0.999999;
    return (uint64_t)((double)base * (0.8 + 0.4 * r));
}

uint64_t pc_webhook_next_at(const pc_webhook_clock *c, unsigned attempt)
{
    return c->now_ms(c->arg) + pc_webhook_backoff_ms(attempt, c->rand01(c->arg));
}

void pc_webhook_sign(const char *secret, const void *body, size_t len,
                     char out[72])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len, md, &mdlen);
    memcpy(out, "sha256=", 7);
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < mdlen && i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[7 + 64] = '\0';
}

void pc_whq_init(pc_whq *q, size_t cap)
{
    q->items = pc_xcalloc(cap ? cap : 1, sizeof *q->items);
    q->cap = cap;
    q->head = q->n = 0;
}

void pc_whq_free(pc_whq *q)
{
    free(q->items);
    q->items = NULL;
    q->cap = q->n = 0;
}

int pc_whq_push(pc_whq *q, void *item)
{
    if (q->n >= q->cap)
        return -1;
    q->items[(q->head + q->n) % q->cap] = item;
    q->n++;
    return 0;
}

void *pc_whq_pop(pc_whq *q)
{
    if (!q->n)
        return NULL;
    void *it = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    return it;
}

static int is_failure(int type)
{
    return type == PC_EV_CIRCUIT_OPEN || type == PC_EV_TARGET_UNHEALTHY ||
           type == PC_EV_CONFIG_RELOAD_FAILED;
}

char *pc_webhook_body(int type, const char *upstream, const char *target,
                      const char *data, char id[33], size_t *len)
{
    unsigned char rnd[16];
    static const char hex[] = "0123456789abcdef";
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        static _Atomic uint64_t seq;
        uint64_t v = pc_now_ns() ^ (atomic_fetch_add(&seq, 1) << 40);
        memcpy(rnd, &v, 8);
        memcpy(rnd + 8, &v, 8);
    }
    for (int i = 0; i < 16; i++) {
        id[2 * i] = hex[rnd[i] >> 4];
        id[2 * i + 1] = hex[rnd[i] & 15];
    }
    id[32] = '\0';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    json_t *d = json_object();
    if (upstream)
        json_object_set_new(d, "upstream", json_string(upstream));
    if (target)
        json_object_set_new(d, "target", json_string(target));
    if (data) {
        json_t *s = json_string(data);
        if (s)
            json_object_set_new(d, is_failure(type) ? "error" : "detail", s);
    }
    json_t *o = json_pack("{s:s,s:s,s:s,s:o}", "id", id, "type",
                          pc_event_name((pc_event_type)type), "time", when,
                          "data", d);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    *len = body ? strlen(body) : 0;
    return body;
}

/* ---- the delivery thread ----------------------------------------------- */

typedef struct wh_event {
    int type;
    char id[33];
    char *body;
    size_t len;
} wh_event;

typedef struct wh_body { /* shared by an event's deliveries */
    int refs;
    int type;
    char id[33];
    char *body;
    size_t len;
} wh_body;

typedef struct delivery delivery;
struct delivery {
    pc_webhooks *w;
    delivery *prev, *next;
    pc_config *cfg;          /* the generation rc belongs to (a reference) */
    const pc_webhook *rc;
    wh_body *b;
    char sig[72];
    unsigned attempts;       /* made so far */
    struct event *timer;     /* retry wait, or the attempt's deadline */
    pc_sock *sock;           /* the attempt in progress */
};

struct pc_webhooks {
    pthread_t thread;
    struct event_base *base;
    pc_sock_loop *sl;
    struct event *wake, *deadline;
    pthread_mutex_t lock;
    pc_whq queue;         /* wh_event* (lock) */
    pc_config *pending;   /* lock */
    int drain;            /* lock */
    uint64_t drain_ns;    /* lock */
    int draining;         /* thread */
    pc_config *cfg;       /* thread */
    delivery *list;       /* thread */
    size_t ndeliveries;   /* thread */
    size_t max_deliveries; /* PC_WEBHOOK_INFLIGHT, or the environment's
                              PORTCULLIS_WEBHOOK_MAX_PENDING (1..65536) */
};

static pc_webhooks *the_sender; /* the hook's target (set before install) */
static _Atomic int drop_logged;

static void count_drop(uint64_t n, const char *why)
{
    pc_metrics_count_webhook_dropped(n);
    if (!atomic_exchange(&drop_logged, 1))
        pc_log(PC_LOG_WARN, "webhooks: deliveries dropped (%s); further drops "
                            "are only counted in portcullis_webhook_dropped_total",
               why);
}

static void body_unref(wh_body *b)
{
    if (--b->refs == 0) {
        free(b->body);
        free(b);
    }
}

static void delivery_free(delivery *d)
{
    pc_webhooks *w = d->w;
    if (d->sock)
        pc_sock_free(d->sock);
    event_free(d->timer);
    if (d->prev)
        d->prev->next = d->next;
    else
        w->list = d->next;
    if (d->next)
        d->next->prev = d->prev;
    w->ndeliveries--;
    body_unref(d->b);
    pc_config_unref(d->cfg);
    free(d);
    if (w->draining && !w->list)
        event_base_loopbreak(w->base);
}

static void arm_ms(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

static uint64_t clock_ms(void *arg)
{
    (void)arg;
    return pc_now_ns() / 1000000u;
}

static double rand01(void *arg)
{
    (void)arg;
    uint32_t v;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
        v = (uint32_t)pc_now_ns();
    return (double)v / 4294967296.0;
}

static const pc_webhook_clock real_clock = {clock_ms, rand01, NULL};

static void attempt_done(delivery *d, int ok, const char *why)
{
    if (d->sock) {
        pc_sock_free(d->sock);
        d->sock = NULL;
    }
    evtimer_del(d->timer);
    if (ok) {
        pc_log(PC_LOG_DEBUG, "webhook %s %s delivered to %s (attempt %u)",
               pc_event_name((pc_event_type)d->b->type), d->b->id, d->rc->url,
               d->attempts);
        delivery_free(d);
        return;
    }
    if (d->attempts >= d->rc->max_attempts) {
        pc_log(PC_LOG_WARN, "webhook %s %s to %s failed after %u attempt%s: %s",
               pc_event_name((pc_event_type)d->b->type), d->b->id, d->rc->url,
               d->attempts, d->attempts == 1 ? "" : "s", why);
        delivery_free(d);
        return;
    }
    uint64_t now = real_clock.now_ms(NULL);
    uint64_t at = pc_webhook_next_at(&real_clock, d->attempts);
    pc_log(PC_LOG_INFO, "webhook %s %s to %s: attempt %u failed (%s), retry in "
                        "%llu ms",
           pc_event_name((pc_event_type)d->b->type), d->b->id, d->rc->url,
           d->attempts, why, (unsigned long long)(at - now));
    arm_ms(d->timer, at - now);
}

/* Any 2xx ends the delivery (probe.c reads the status line). */
static void verdict(delivery *d, int status, const char *why)
{
    int ok = status >= 200 && status < 300;
    attempt_done(d, ok, status ? pc_probe_class(status) : why);
}

static void read_cb(pc_sock *s, void *arg)
{
    const char *why = "?";
    int st = pc_probe_status(pc_sock_input(s), &why);
    if (st >= 0)
        verdict(arg, st, why);
}

static void sock_event_cb(pc_sock *s, short what, void *arg)
{
    const char *why = "?";
    int st = pc_probe_event(s, what, &why);
    if (st >= 0)
        verdict(arg, st, why);
}

static void start_attempt(delivery *d)
{
    const pc_webhook *rc = d->rc;
    d->attempts++;
    SSL *ssl = NULL;
    if (rc->target.tls && !(ssl = pc_target_ssl(&rc->up, &rc->target))) {
        attempt_done(d, 0, "cannot set up TLS");
        return;
    }
    d->sock = pc_sock_connect(d->w->sl, (const struct sockaddr *)&rc->target.addr,
                              rc->target.addrlen, ssl);
    if (!d->sock) {
        attempt_done(d, 0, "cannot create a socket");
        return;
    }
    pc_sock_setcb(d->sock, read_cb, NULL, sock_event_cb, d);
    pc_sock_set_read_hwm(d->sock, 4096);
    pc_sock_set_timeouts(d->sock, rc->timeout, rc->timeout);
    const char *type = pc_event_name((pc_event_type)d->b->type);
    struct evbuffer *out = pc_sock_output(d->sock);
    evbuffer_add_printf(out,
                        "POST %s HTTP/1.1\r\nHost: %s\r\n"
                        "User-Agent: portcullis/" PC_VERSION "\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n"
                        "X-Portcullis-Event: %s\r\n"
                        "X-Portcullis-Delivery: %s\r\n"
                        "X-Portcullis-Signature: %s\r\n"
                        "Connection: close\r\n\r\n",
                        rc->path, rc->target.hostport, d->b->len, type,
                        d->b->id, d->sig);
    evbuffer_add(out, d->b->body, d->b->len);
    pc_sock_read(d->sock, 1);
    arm_ms(d->timer, rc->timeout); /* the whole attempt */
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    delivery *d = arg;
    (void)fd;
    (void)what;
    if (d->sock)
        attempt_done(d, 0, "timeout");
    else
        start_attempt(d);
}

static void fan_out(pc_webhooks *w, wh_event *e)
{
    wh_body *b = pc_xcalloc(1, sizeof *b);
    b->refs = 1;
    b->type = e->type;
    memcpy(b->id, e->id, sizeof b->id);
    b->body = e->body;
    b->len = e->len;
    free(e);
    for (size_t i = 0; w->cfg && i < w->cfg->nwebhooks; i++) {
        const pc_webhook *rc = &w->cfg->webhooks[i];
        if (!(rc->events & (1u << b->type)))
            continue;
        if (w->ndeliveries >= w->max_deliveries) {
            count_drop(1, "too many deliveries pending");
            continue;
        }
        delivery *d = pc_xcalloc(1, sizeof *d);
        d->w = w;
        d->cfg = pc_config_ref(w->cfg);
        d->rc = rc;
        d->b = b;
        b->refs++;
        pc_webhook_sign(rc->secret, b->body, b->len, d->sig);
        d->timer = evtimer_new(w->base, timer_cb, d);
        d->next = w->list;
        if (w->list)
            w->list->prev = d;
        w->list = d;
        w->ndeliveries++;
        start_attempt(d);
    }
    body_unref(b);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_webhooks *w = arg;
    (void)fd;
    (void)what;
    size_t n = w->ndeliveries;
    if (n) {
        pc_log(PC_LOG_WARN, "webhooks: shutdown_timeout reached: %zu pending "
                            "deliver%s dropped",
               n, n == 1 ? "y" : "ies");
        pc_metrics_count_webhook_dropped(n);
    }
    while (w->list)
        delivery_free(w->list);
    event_base_loopbreak(w->base);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_webhooks *w = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&w->lock);
    pc_config *cfg = w->pending;
    w->pending = NULL;
    pc_whq q = w->queue;
    pc_whq_init(&w->queue, PC_WEBHOOK_QUEUE);
    int drain = w->drain;
    uint64_t drain_ns = w->drain_ns;
    pthread_mutex_unlock(&w->lock);
    if (cfg) {
        pc_config_unref(w->cfg);
        w->cfg = cfg;
    }
    wh_event *e;
    while ((e = pc_whq_pop(&q)))
        fan_out(w, e);
    pc_whq_free(&q);
    if (drain && !w->draining) {
        w->draining = 1;
        uint64_t now = pc_now_ns();
        arm_ms(w->deadline, drain_ns > now ? (drain_ns - now) / 1000000u : 0);
        /* Waiting retries are attempted now. */
        for (delivery *d = w->list; d; d = d->next)
            if (!d->sock)
                arm_ms(d->timer, 0);
        if (!w->list)
            event_base_loopbreak(w->base);
    }
}

static void hook(pc_event_type t, const char *upstream, const char *target,
                 const char *data)
{
    pc_webhooks *w = the_sender;
    if (!w || t == PC_EV_CIRCUIT_HALF_OPEN)
        return;
    wh_event *e = pc_xcalloc(1, sizeof *e);
    e->type = (int)t;
    e->body = pc_webhook_body((int)t, upstream, target, data, e->id, &e->len);
    if (!e->body) {
        free(e);
        return;
    }
    pthread_mutex_lock(&w->lock);
    int rc = pc_whq_push(&w->queue, e);
    pthread_mutex_unlock(&w->lock);
    if (rc < 0) {
        free(e->body);
        free(e);
        count_drop(1, "queue full");
        return;
    }
    event_active(w->wake, EV_READ, 0);
}

static void *thread_main(void *arg)
{
    pc_webhooks *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* Everything the sender holds once its thread is gone (or never ran):
 * deliveries, configurations, events, loop, queue. */
static void sender_free(pc_webhooks *w)
{
    while (w->list)
        delivery_free(w->list);
    pc_config_unref(w->cfg);
    pc_config_unref(w->pending);
    event_free(w->wake);
    event_free(w->deadline);
    pc_sock_loop_free(w->sl);
    event_base_free(w->base);
    pc_whq_free(&w->queue);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

pc_webhooks *pc_webhooks_start(pc_config *cfg)
{
    pc_webhooks *w = pc_xcalloc(1, sizeof *w);
    w->max_deliveries = PC_WEBHOOK_INFLIGHT;
    const char *env = getenv("PORTCULLIS_WEBHOOK_MAX_PENDING");
    if (env && *env) {
        char *end;
        unsigned long v = strtoul(env, &end, 10);
        if (*end || v < 1 || v > 65536)
            pc_log(PC_LOG_WARN, "PORTCULLIS_WEBHOOK_MAX_PENDING '%s' ignored "
                                "(expected 1..65536)",
                   env);
        else
            w->max_deliveries = v;
    }
    pthread_mutex_init(&w->lock, NULL);
    pc_whq_init(&w->queue, PC_WEBHOOK_QUEUE);
    w->base = event_base_new();
    if (!w->base) {
        pc_log(PC_LOG_ERROR, "webhooks: cannot create an event loop");
        pc_whq_free(&w->queue);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    w->sl = pc_sock_loop_new(w->base);
    w->wake = event_new(w->base, -1, 0, wake_cb, w);
    w->deadline = evtimer_new(w->base, deadline_cb, w);
    w->cfg = pc_config_ref(cfg);
    if (pthread_create(&w->thread, NULL, thread_main, w) != 0) {
        pc_log(PC_LOG_ERROR, "webhooks: cannot start their thread");
        sender_free(w);
        return NULL;
    }
    the_sender = w;
    pc_event_set_hook(hook);
    return w;
}

void pc_webhooks_reconfigure(pc_webhooks *w, pc_config *cfg)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    pc_config_unref(w->pending);
    w->pending = pc_config_ref(cfg);
    pthread_mutex_unlock(&w->lock);
    event_active(w->wake, EV_READ, 0);
}

void pc_webhooks_drain(pc_webhooks *w, uint64_t deadline_ns)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    if (!w->drain) {
        w->drain = 1;
        w->drain_ns = deadline_ns;
    }
    pthread_mutex_unlock(&w->lock);
    event_active(w->wake, EV_READ, 0);
}

void pc_webhooks_stop(pc_webhooks *w)
{
    if (!w)
        return;
    pc_webhooks_drain(w, pc_now_ns());
    pthread_join(w->thread, NULL);
    pc_event_set_hook(NULL);
    /* A hook call that began before the removal may still push: it holds
     * no reference we free before this lock. */
    pthread_mutex_lock(&w->lock);
    the_sender = NULL;
    wh_event *e;
    while ((e = pc_whq_pop(&w->queue))) {
        free(e->body);
        free(e);
    }
    pthread_mutex_unlock(&w->lock);
    sender_free(w);
}
