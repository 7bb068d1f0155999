/* redis.c: one event loop's Redis / Redis Cluster client (see redis.h for
 * what it promises). Owns its hiredis contexts, their libevent events and
 * every pending command; never blocks, never calls a callback from inside
 * pc_redis_eval.
 *
 * DESIGN:
 *
 *   pc_redis_eval ─► cmd (deadline = now + timeout) ─► list (deadline order)
 *        │                                               ▲ timer: head expired
 *        ▼                                               │ ─► TIMEOUT, node
 * closed mode UNKNOWN: held until the seed answers CLUSTER SLOTS mode SINGLE :
 * seed node ─┐ mode CLUSTER: slots[crc16(key)] ─► node ─► hiredis (pipelined)
 *                                  reply ─┤ NOSCRIPT ─► EVAL, same node
 *                                         ├ MOVED ─► map updated, resent
 *                                         ├ ASK   ─► ASKING + resent
 *                                         └ else  ─► cb (once), cmd freed
 *
 * A cmd is freed when it is finished (cb called) and no hiredis callback
 * still holds it (inflight == 0): a timed-out cmd stays until hiredis hands
 * it back (NULL reply when its connection is closed). Every connection
 * sends AUTH / SELECT first; replies come in order, so they precede the
 * commands. The commands all share one timeout, so the list built in issue
 * order is in deadline order and one timer serves them all. */
#include "portcullis/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/errlog.h"
#include "portcullis/util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
#define REFRESH_EVERY_MS 5000
#define REFRESH_MIN_GAP_MS 100
#define MAX_REDIRECTS 5
#define MAX_NODES 64
#define LOG_GAP_NS 10000000000ull /* one error line per node per 10 s */

typedef enum { MODE_UNKNOWN, MODE_SINGLE, MODE_CLUSTER } redis_mode;

typedef struct node {
    pc_redis *r;
    char host[PC_REDIS_HOST_MAX];
    uint16_t port;
    int is_unix;
    redisAsyncContext *ac; /* NULL: down (in backoff) or never connected */
    struct event *retry_ev;
    uint64_t backoff_ms; /* next backoff; 0 after a good reply */
    uint64_t logged_ns;  /* last error line about this node */
    int was_up;          /* a reply came on the current connection */
} node;

typedef struct cmd {
    pc_redis *r;
    struct cmd *prev, *next; /* the client's list of unfinished cmds */
    uint64_t deadline_ns;
    node *ask; /* ASK target for the next send, or NULL */
    node *on;  /* node of the last send */
    pc_redis_cb cb;
    const pc_redis_script *script;
    unsigned slot;
    unsigned inflight; /* hiredis callbacks that hold this cmd */
    unsigned redirects;
    unsigned done : 1;     /* cb called */
    unsigned held : 1;     /* waiting for the mode (not sent) */
    unsigned use_eval : 1; /* after NOSCRIPT */
    unsigned linked : 1;   /* in the list */
    unsigned argc;         /* key + args (EVALSHA sha 1 come first) */
    const char *argv[PC_REDIS_MAX_ARGS + 1];
    size_t argvlen[PC_REDIS_MAX_ARGS + 1];
    _Alignas(16) unsigned char ctx[PC_REDIS_CTX_MAX];
    char data[]; /* key and args */
} cmd;

struct pc_redis {
    struct event_base *base;
    pc_redis_opts o;
    redis_mode mode;
    node *nodes[MAX_NODES]; /* [0] is the seed */
    unsigned nnodes;
    node *slots[PC_REDIS_SLOTS]; /* cluster: master of each slot, or NULL */
    cmd *head, *tail;
    struct event *timer;      /* the head's deadline */
    struct event *refresh_ev; /* cluster map refresh */
    uint64_t refresh_ns;      /* last CLUSTER SLOTS sent */
    int refreshing;           /* one CLUSTER SLOTS in flight */
    int freeing;
    pc_redis_stats st;
};

static void connect_node(node *n);
static int dispatch(pc_redis *r, cmd *c);
static void refresh_soon(pc_redis *r);

const pc_redis_stats *pc_redis_get_stats(const pc_redis *r)
{
    return &r->st;
}

/* ---- logging ----------------------------------------------------------- */

static void node_log(node *n, pc_log_level lvl, const char *what,
                     const char *detail)
{
    uint64_t now = pc_now_ns();
    if (n->logged_ns && now - n->logged_ns < LOG_GAP_NS)
        return;
    n->logged_ns = now;
    if (n->is_unix)
        pc_log(lvl, "redis unix:%s: %s%s%s", n->host, what, detail ? ": " : "",
               detail ? detail : "");
    else
        pc_log(lvl, "redis %s%s%s:%u: %s%s%s", strchr(n->host, ':') ? "[" : "",
               n->host, strchr(n->host, ':') ? "]" : "", n->port, what,
               detail ? ": " : "", detail ? detail : "");
}

/* ---- the command list and its timer ----------------------------------- */

static void arm_timer(pc_redis *r)
{
    if (!r->head) {
        evtimer_del(r->timer);
        return;
    }
    uint64_t now = pc_now_ns();
    uint64_t d = r->head->deadline_ns > now ? r->head->deadline_ns - now : 0;
    struct timeval tv = {(time_t)(d / 1000000000u),
                         (suseconds_t)(d % 1000000000u / 1000u)};
    evtimer_add(r->timer, &tv);
}

static void unlink_cmd(pc_redis *r, cmd *c)
{
    if (!c->linked)
        return;
    int was_head = r->head == c;
    if (c->prev)
        c->prev->next = c->next;
    else
        r->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        r->tail = c->prev;
    c->prev = c->next = NULL;
    c->linked = 0;
    if (was_head && !r->freeing)
        arm_timer(r);
}

static void maybe_free(cmd *c)
{
    if (c->done && c->inflight == 0)
        free(c);
}

/* The one place a callback runs. */
static void finish(cmd *c, pc_redis_status st, const redisReply *rep)
{
    if (c->done)
        return;
    pc_redis *r = c->r;
    c->done = 1;
    c->held = 0;
    unlink_cmd(r, c);
    switch (st) {
    case PC_REDIS_OK:
        r->st.replies++;
        break;
    case PC_REDIS_ERROR:
        r->st.errors++;
        break;
    case PC_REDIS_TIMEOUT:
        r->st.timeouts++;
        break;
    case PC_REDIS_DOWN:
        r->st.down++;
        break;
    }
    c->cb(c->ctx, st, rep);
    maybe_free(c);
}

/* ---- connections ------------------------------------------------------- */

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_node(arg);
}

/* n is down: reconnect after the backoff, which doubles up to its cap. */
static void schedule_retry(node *n)
{
    if (n->r->freeing)
        return;
    uint64_t ms = n->backoff_ms ? n->backoff_ms : BACKOFF_MIN_MS;
    n->backoff_ms = ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    evtimer_add(n->retry_ev, &tv);
}

/* n's connection is gone. One that had answered is reopened at once (a
 * restart, a single slow answer: new commands queue on the new connection
 * within their deadlines); one that never answered waits its backoff. */
static void reconnect(node *n)
{
    if (n->was_up && !n->r->freeing) {
        connect_node(n); /* on failure it schedules the retry itself */
        return;
    }
    schedule_retry(n);
}

/* Closes n's connection now: hiredis hands every pending cmd back with a
 * NULL reply (PC_REDIS_DOWN), then n reconnects. */
static void close_node(node *n)
{
    redisAsyncContext *ac = n->ac;
    if (!ac)
        return;
    n->ac = NULL; /* the callbacks below see a connection already gone */
    redisAsyncFree(ac);
    reconnect(n);
    if (n->r->mode == MODE_CLUSTER)
        refresh_soon(n->r);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    node *n = ac->data;
    if (status == REDIS_OK || n->ac != ac)
        return;
    n->ac = NULL; /* hiredis frees it after this returns */
    node_log(n, PC_LOG_WARN, "cannot connect", ac->errstr);
    schedule_retry(n);
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    node *n = ac->data;
    if (n->ac != ac)
        return; /* closed by us */
    n->ac = NULL;
    node_log(n, PC_LOG_WARN, "connection lost",
             status == REDIS_OK ? "closed" : ac->errstr);
    reconnect(n);
    if (n->r->mode == MODE_CLUSTER)
        refresh_soon(n->r);
}

/* AUTH / SELECT replies: a refusal is logged; the commands behind it then
 * fail with the server's own error (NOAUTH...), answered as errors. */
static void handshake_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *rep = reply;
    (void)priv;
    node *n = ac->data;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        node_log(n, PC_LOG_ERROR, "handshake refused", rep->str);
}

static void slots_cb(redisAsyncContext *ac, void *reply, void *priv);

static void connect_node(node *n)
{
    pc_redis *r = n->r;
    if (n->ac || r->freeing)
        return;
    redisAsyncContext *ac = n->is_unix ? redisAsyncConnectUnix(n->host)
                                       : redisAsyncConnect(n->host, n->port);
    if (!ac) {
        schedule_retry(n);
        return;
    }
    if (ac->err) {
        node_log(n, PC_LOG_WARN, "cannot connect", ac->errstr);
        redisAsyncFree(ac);
        schedule_retry(n);
        return;
    }
    ac->data = n;
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_retry(n);
        return;
    }
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    n->ac = ac;
    n->was_up = 0;
    r->st.connects++;
    if (r->o.password)
        redisAsyncCommand(ac, handshake_cb, NULL, "AUTH %s", r->o.password);
    if (r->o.db && r->mode != MODE_CLUSTER)
        redisAsyncCommand(ac, handshake_cb, NULL, "SELECT %llu",
                          (unsigned long long)r->o.db);
    if (r->mode == MODE_UNKNOWN && n == r->nodes[0]) {
        r->refreshing = 1;
        r->refresh_ns = pc_now_ns();
        redisAsyncCommand(ac, slots_cb, NULL, "CLUSTER SLOTS");
    }
}

static node *node_get(pc_redis *r, const char *host, uint16_t port)
{
    for (unsigned i = 0; i < r->nnodes; i++) {
        node *n = r->nodes[i];
        if (!n->is_unix && n->port == port && !strcmp(n->host, host))
            return n;
    }
    if (r->nnodes == MAX_NODES || strlen(host) >= PC_REDIS_HOST_MAX)
        return NULL;
    node *n = pc_xcalloc(1, sizeof *n);
    n->r = r;
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    n->retry_ev = evtimer_new(r->base, retry_cb, n);
    if (!n->retry_ev) {
        free(n);
        return NULL;
    }
    r->nodes[r->nnodes++] = n;
    return n;
}

/* ---- the cluster slot map ---------------------------------------------- */

typedef struct map_fill {
    pc_redis *r;
    node **slots;
    int bad;
} map_fill;

static void map_range(void *arg, unsigned from, unsigned to, const char *host,
                      uint16_t port)
{
    map_fill *f = arg;
    node *n = node_get(f->r, host, port);
    if (!n) {
        f->bad = 1;
        return;
    }
    for (unsigned s = from; s <= to; s++)
        f->slots[s] = n;
}

static void release_held(pc_redis *r)
{
    for (cmd *c = r->head, *nx; c; c = nx) {
        nx = c->next;
        if (!c->held)
            continue;
        c->held = 0;
        if (dispatch(r, c) < 0)
            finish(c, PC_REDIS_DOWN, NULL);
    }
}

static void slots_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    node *n = ac->data;
    pc_redis *r = n->r;
    const redisReply *rep = reply;
    r->refreshing = 0;
    if (r->freeing)
        return;
    if (!rep) { /* the connection went: held cmds cannot go anywhere */
        for (cmd *c = r->head, *nx; c; c = nx) {
            nx = c->next;
            if (c->held)
                finish(c, PC_REDIS_DOWN, NULL);
        }
        return;
    }
    n->backoff_ms = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        if (r->mode == MODE_UNKNOWN) { /* "cluster support disabled" */
            r->mode = MODE_SINGLE;
            pc_log(PC_LOG_INFO, "redis %s: standalone server", r->o.address);
            release_held(r);
        }
        return;
    }
    node **slots = pc_xcalloc(PC_REDIS_SLOTS, sizeof *slots);
    map_fill f = {r, slots, 0};
    int nr = pc_redis_slots_parse(rep, map_range, &f, n->host);
    if (nr <= 0 || f.bad) {
        node_log(n, PC_LOG_WARN, "unusable CLUSTER SLOTS reply", NULL);
        free(slots);
        if (r->mode == MODE_UNKNOWN) {
            r->mode = MODE_SINGLE;
            release_held(r);
        }
        return;
    }
    memcpy(r->slots, slots, sizeof r->slots);
    free(slots);
    r->st.refreshes++;
    if (r->mode == MODE_UNKNOWN) {
        r->mode = MODE_CLUSTER;
        pc_log(PC_LOG_INFO, "redis %s: cluster, %d slot ranges", r->o.address,
               nr);
        struct timeval tv = {REFRESH_EVERY_MS / 1000, 0};
        evtimer_add(r->refresh_ev, &tv);
        release_held(r);
    }
}

/* Sends CLUSTER SLOTS to a connected node (the seed first), at most one
 * at a time and one per REFRESH_MIN_GAP_MS. */
static void refresh_now(pc_redis *r)
{
    if (r->freeing)
        return;
    if (r->refreshing &&
        pc_now_ns() - r->refresh_ns < REFRESH_EVERY_MS * 1000000ull)
        return; /* one at a time, unless the last one got lost */
    node *to = NULL;
    for (unsigned i = 0; i < r->nnodes && !to; i++)
        if (r->nodes[i]->ac && r->nodes[i]->was_up)
            to = r->nodes[i];
    for (unsigned i = 0; i < r->nnodes && !to; i++)
        if (r->nodes[i]->ac)
            to = r->nodes[i];
    if (!to) {
        connect_node(r->nodes[0]);
        to = r->nodes[0];
        if (!to->ac)
            return;
    }
    r->refreshing = 1;
    r->refresh_ns = pc_now_ns();
    if (redisAsyncCommand(to->ac, slots_cb, NULL, "CLUSTER SLOTS") != REDIS_OK)
        r->refreshing = 0;
}

static void refresh_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_redis *r = arg;
    (void)fd;
    (void)what;
    refresh_now(r);
    struct timeval tv = {REFRESH_EVERY_MS / 1000, 0};
    evtimer_add(r->refresh_ev, &tv);
}

static void refresh_soon(pc_redis *r)
{
    uint64_t now = pc_now_ns();
    if (now - r->refresh_ns >= REFRESH_MIN_GAP_MS * 1000000ull) {
        refresh_now(r);
        return;
    }
    struct timeval tv = {0, REFRESH_MIN_GAP_MS * 1000};
    evtimer_add(r->refresh_ev, &tv); /* the next periodic one follows it */
}

/* ---- sending and replies ----------------------------------------------- */

static void reply_cb(redisAsyncContext *ac, void *reply, void *priv);

/* Sends c on n (ASKING first when c was redirected with ASK). -1 when n
 * has no connection. */
static int send_on(node *n, cmd *c)
{
    if (!n->ac && !evtimer_pending(n->retry_ev, NULL))
        connect_node(n); /* a node never tried (new in the map) */
    if (!n->ac)
        return -1;
    const char *argv[PC_REDIS_MAX_ARGS + 4];
    size_t lens[PC_REDIS_MAX_ARGS + 4];
    argv[0] = c->use_eval ? "EVAL" : "EVALSHA";
    lens[0] = c->use_eval ? 4 : 7;
    argv[1] = c->use_eval ? c->script->text : c->script->sha;
    lens[1] = c->use_eval ? strlen(c->script->text) : 40;
    argv[2] = "1";
    lens[2] = 1;
    for (unsigned i = 0; i < c->argc; i++) {
        argv[3 + i] = c->argv[i];
        lens[3 + i] = c->argvlen[i];
    }
    if (c->ask && redisAsyncCommand(n->ac, NULL, NULL, "ASKING") != REDIS_OK)
        return -1;
    if (redisAsyncCommandArgv(n->ac, reply_cb, c, (int)c->argc + 3, argv,
                              lens) != REDIS_OK)
        return -1;
    c->inflight++;
    c->on = n;
    c->r->st.sent++;
    return 0;
}

static int dispatch(pc_redis *r, cmd *c)
{
    if (r->freeing)
        return -1;
    if (c->ask)
        return send_on(c->ask, c);
    switch (r->mode) {
    case MODE_UNKNOWN:
        if (!r->nodes[0]->ac)
            return -1;
        c->held = 1; /* the seed is connecting: its CLUSTER SLOTS decides */
        return 0;
    case MODE_SINGLE:
        return send_on(r->nodes[0], c);
    case MODE_CLUSTER:
        break;
    }
    node *n = r->slots[c->slot];
    if (!n) { /* a hole in the map: any node answers MOVED */
        refresh_soon(r);
        n = r->nodes[0];
    }
    return send_on(n, c);
}

/* An error reply: NOSCRIPT, MOVED and ASK are followed; 1 when c went
 * out again, 0 when the error is c's answer. */
static int follow(pc_redis *r, node *n, cmd *c, const redisReply *rep)
{
    if (!c->use_eval && rep->len >= 8 && !memcmp(rep->str, "NOSCRIPT", 8)) {
        r->st.noscript++;
        pc_log(PC_LOG_DEBUG, "redis: NOSCRIPT, sending EVAL");
        c->use_eval = 1;
        c->ask = c->ask ? n : NULL; /* an ASK target still needs ASKING */
        return send_on(n, c) == 0;
    }
    pc_redis_redirect rd;
    pc_redis_redirect_kind k = pc_redis_parse_redirect(rep->str, rep->len, &rd);
    if (k == PC_REDIS_REDIRECT_NONE || c->redirects >= MAX_REDIRECTS ||
        r->mode != MODE_CLUSTER)
        return 0;
    node *to = node_get(r, rd.host[0] ? rd.host : n->host, rd.port);
    if (!to)
        return 0;
    c->redirects++;
    pc_log(PC_LOG_DEBUG, "redis: %s slot %u -> %s:%u",
           k == PC_REDIS_REDIRECT_MOVED ? "MOVED" : "ASK", rd.slot, rd.host,
           rd.port);
    if (k == PC_REDIS_REDIRECT_MOVED) {
        r->st.moved++;
        r->slots[rd.slot] = to;
        c->ask = NULL;
        refresh_soon(r);
    } else {
        r->st.ask++;
        c->ask = to;
    }
    return send_on(to, c) == 0;
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    cmd *c = priv;
    node *n = ac->data;
    const redisReply *rep = reply;
    c->inflight--;
    if (rep) {
        n->backoff_ms = 0;
        n->was_up = 1;
    }
    if (c->done) {
        maybe_free(c);
        return;
    }
    if (!rep) {
        finish(c, PC_REDIS_DOWN, NULL);
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        if (!c->r->freeing && follow(c->r, n, c, rep))
            return;
        node_log(n, PC_LOG_WARN, "error reply", rep->str);
        finish(c, PC_REDIS_ERROR, rep);
        return;
    }
    finish(c, PC_REDIS_OK, rep);
}

/* The head's deadline passed: it (and every other expired cmd) times
 * out, and the connection each was in flight on is closed: its state is
 * unknown (stuck server, lost packets), and a fresh one is cheap. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    pc_redis *r = arg;
    (void)fd;
    (void)what;
    uint64_t now = pc_now_ns();
    node *stuck[MAX_NODES];
    unsigned nstuck = 0;
    while (r->head && r->head->deadline_ns <= now) {
        cmd *c = r->head;
        /* held: the seed's CLUSTER SLOTS is what did not answer */
        node *on = c->inflight ? c->on : c->held ? r->nodes[0] : NULL;
        unsigned k = 0;
        while (on && k < nstuck && stuck[k] != on)
            k++;
        if (on && k == nstuck)
            stuck[nstuck++] = on;
        finish(c, PC_REDIS_TIMEOUT, NULL);
    }
    for (unsigned k = 0; k < nstuck; k++) {
        node_log(stuck[k], PC_LOG_WARN,
                 "no answer within timeout, reconnecting", NULL);
        close_node(stuck[k]);
    }
    arm_timer(r);
}

/* ---- the client ------------------------------------------------------- */

pc_redis *pc_redis_new(struct event_base *base, const pc_redis_opts *o)
{
    pc_redis *r = pc_xcalloc(1, sizeof *r);
    r->base = base;
    r->o = *o;
    r->o.address = pc_xstrdup(o->address ? o->address : "");
    r->o.password = o->password ? pc_xstrdup(o->password) : NULL;
    r->timer = evtimer_new(base, timer_cb, r);
    r->refresh_ev = evtimer_new(base, refresh_cb, r);
    node *seed = pc_xcalloc(1, sizeof *seed);
    seed->r = r;
    memcpy(seed->host, o->host, sizeof seed->host);
    seed->port = o->port;
    seed->is_unix = o->is_unix;
    seed->retry_ev = evtimer_new(base, retry_cb, seed);
    r->nodes[r->nnodes++] = seed;
    if (!r->timer || !r->refresh_ev || !seed->retry_ev) {
        fputs("portcullis: out of memory creating redis timers\n", stderr);
        abort();
    }
    connect_node(seed);
    return r;
}

void pc_redis_free(pc_redis *r)
{
    if (!r)
        return;
    r->freeing = 1;
    for (unsigned i = 0; i < r->nnodes; i++) {
        node *n = r->nodes[i];
        evtimer_del(n->retry_ev);
        redisAsyncContext *ac = n->ac;
        n->ac = NULL;
        if (ac)
            redisAsyncFree(ac); /* pending cmds: NULL replies, DOWN */
    }
    while (r->head) /* held, never sent */
        finish(r->head, PC_REDIS_DOWN, NULL);
    for (unsigned i = 0; i < r->nnodes; i++) {
        event_free(r->nodes[i]->retry_ev);
        free(r->nodes[i]);
    }
    event_free(r->timer);
    event_free(r->refresh_ev);
    free(r->o.address);
    free(r->o.password);
    free(r);
}

int pc_redis_eval(pc_redis *r, const pc_redis_script *s, const char *key,
                  size_t klen, unsigned nargs, const char *const *args,
                  const size_t *arglens, pc_redis_cb cb, const void *ctx,
                  size_t ctxlen)
{
    if (!r || r->freeing || nargs > PC_REDIS_MAX_ARGS - 1 ||
        ctxlen > PC_REDIS_CTX_MAX)
        return -1;
    size_t need = klen;
    for (unsigned i = 0; i < nargs; i++)
        need += arglens[i];
    cmd *c = pc_xmalloc(sizeof *c + need);
    memset(c, 0, sizeof *c);
    c->r = r;
    c->cb = cb;
    c->script = s;
    c->slot = pc_redis_key_slot(key, klen);
    memcpy(c->ctx, ctx, ctxlen);
    char *p = c->data;
    memcpy(p, key, klen);
    c->argv[0] = p;
    c->argvlen[0] = klen;
    p += klen;
    for (unsigned i = 0; i < nargs; i++) {
        memcpy(p, args[i], arglens[i]);
        c->argv[1 + i] = p;
        c->argvlen[1 + i] = arglens[i];
        p += arglens[i];
    }
    c->argc = nargs + 1;
    c->deadline_ns = pc_now_ns() + r->o.timeout_ms * 1000000ull;
    if (dispatch(r, c) < 0) {
        free(c);
        return -1;
    }
    c->linked = 1;
    c->prev = r->tail;
    if (r->tail)
        r->tail->next = c;
    else
        r->head = c;
    r->tail = c;
    if (r->head == c)
        arm_timer(r);
    return 0;
}
