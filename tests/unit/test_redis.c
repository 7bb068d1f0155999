/* test_redis.c: the Redis client's pure parts (lib/redis_proto.c: CRC16,
 * key slots with hash tags, MOVED / ASK, addresses), its reply readers
 * (net/redis.c: CLUSTER SLOTS, the script's pair) on replies parsed by
 * hiredis's own RESP reader from wire bytes, the script result mapped to
 * the RateLimit headers (lib/bucket.c pc_bucket_decide), the `redis`
 * config block, and the cluster-scope stage's asynchronous paths against
 * sockets that refuse or never answer (no Redis needed). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_req.h"
#include "portcullis/bucket.h"
#include "portcullis/redis.h"
#include "portcullis/redis_proto.h"

/* ---- key slots ---------------------------------------------------------- */

/* Expected values from `redis-cli cluster keyslot` (Redis 7.0). */
Test(redis, crc16_and_key_slots)
{
    cr_expect_eq(pc_redis_crc16("123456789", 9), 0x31C3);
    static const struct {
        const char *key;
        unsigned slot;
    } v[] = {
        {"foo", 12182},
        {"somekey", 11058},
        {"foo{hash_tag}", 2515},
        {"{user1000}.following", 3443},
        {"user1000", 3443},
        {"foo{}{bar}", 8363},    /* empty tag: the whole key */
        {"foo{{bar}}zap", 4015}, /* the tag is "{bar" */
        {"{bar", 4015},
        {"foo{bar}{zap}", 5061}, /* the first tag only */
        {"bar", 5061},
        {"{pc:rl:r:ip:127.0.0.1}", 9725},
        {"123456789", 12739},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        cr_expect_eq(pc_redis_key_slot(v[i].key, strlen(v[i].key)), v[i].slot,
                     "%s", v[i].key);
    cr_expect_eq(pc_redis_key_slot("", 0), 0);
}

/* ---- redirections -------------------------------------------------------- */

static pc_redis_redirect_kind redirect(const char *s, pc_redis_redirect *rd)
{
    memset(rd, 0, sizeof *rd);
    return pc_redis_parse_redirect(s, strlen(s), rd);
}

Test(redis, moved_and_ask)
{
    pc_redis_redirect rd;
    cr_assert_eq(redirect("MOVED 3999 127.0.0.1:6381", &rd),
                 PC_REDIS_REDIRECT_MOVED);
    cr_expect_eq(rd.slot, 3999);
    cr_expect_str_eq(rd.host, "127.0.0.1");
    cr_expect_eq(rd.port, 6381);
    cr_assert_eq(redirect("ASK 16383 [::1]:7000", &rd), PC_REDIS_REDIRECT_ASK);
    cr_expect_eq(rd.slot, 16383);
    cr_expect_str_eq(rd.host, "::1");
    cr_expect_eq(rd.port, 7000);
    cr_assert_eq(redirect("ASK 0 redis-2.internal:6379", &rd),
                 PC_REDIS_REDIRECT_ASK);
    cr_expect_str_eq(rd.host, "redis-2.internal");
    /* no endpoint known to Redis: the node that answered, on that port */
    cr_assert_eq(redirect("MOVED 12 :6380", &rd), PC_REDIS_REDIRECT_MOVED);
    cr_expect_str_eq(rd.host, "");
    cr_expect_eq(rd.port, 6380);
    /* anything malformed or out of range is a plain error */
    static const char *const bad[] = {
        "MOVED 16384 127.0.0.1:6381",
        "MOVED -1 127.0.0.1:6381",
        "MOVED 3999 127.0.0.1:0",
        "MOVED 3999 127.0.0.1:65536",
        "MOVED 3999 127.0.0.1",
        "MOVED 3999 :0",
        "MOVED 3999",
        "MOVED  127.0.0.1:6381",
        "ASK 12a 127.0.0.1:6381",
        "MOVED 3999 [::1:6381",
        "ERR unknown command",
        "NOSCRIPT No matching script",
        "MOVED 3999 127.0.0.1:6381x",
        "moved 3999 127.0.0.1:6381",
        "MOVED 123456 127.0.0.1:6381",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(redirect(bad[i], &rd), PC_REDIS_REDIRECT_NONE, "%s",
                     bad[i]);
}

Test(redis, addresses)
{
    char host[PC_REDIS_HOST_MAX];
    uint16_t port = 0;
    int is_unix = -1;
    const char *why = NULL;
    cr_assert_eq(pc_redis_parse_address("127.0.0.1:6379", host, sizeof host,
                                        &port, &is_unix, &why),
                 0);
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_eq(port, 6379);
    cr_expect_eq(is_unix, 0);
    cr_assert_eq(pc_redis_parse_address("[::1]:7000", host, sizeof host, &port,
                                        &is_unix, &why),
                 0);
    cr_expect_str_eq(host, "::1");
    cr_assert_eq(pc_redis_parse_address("unix:/run/redis.sock", host,
                                        sizeof host, &port, &is_unix, &why),
                 0);
    cr_expect_str_eq(host, "/run/redis.sock");
    cr_expect_eq(is_unix, 1);
    static const char *const bad[] = {"redis",
                                      "127.0.0.1:",
                                      ":6379",
                                      "[]:6379",
                                      "127.0.0.1:0",
                                      "127.0.0.1:70000",
                                      "unix:relative.sock",
                                      "unix:",
                                      "[::1]6379"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        cr_expect_eq(pc_redis_parse_address(bad[i], host, sizeof host, &port,
                                            &is_unix, &why),
                     -1, "%s", bad[i]);
        cr_expect_not_null(why);
    }
}

/* ---- replies, parsed by hiredis from RESP bytes ------------------------ */

static redisReply *resp(const char *wire)
{
    redisReader *rd = redisReaderCreate();
    void *rep = NULL;
    cr_assert_eq(redisReaderFeed(rd, wire, strlen(wire)), REDIS_OK);
    cr_assert_eq(redisReaderGetReply(rd, &rep), REDIS_OK);
    cr_assert_not_null(rep, "incomplete RESP in the test");
    redisReaderFree(rd);
    return rep;
}

typedef struct ranges {
    unsigned n, from[8], to[8];
    char host[8][64];
    uint16_t port[8];
} ranges;

static void on_range(void *arg, unsigned from, unsigned to, const char *host,
                     uint16_t port)
{
    ranges *r = arg;
    cr_assert_lt(r->n, 8);
    r->from[r->n] = from;
    r->to[r->n] = to;
    snprintf(r->host[r->n], sizeof r->host[0], "%s", host);
    r->port[r->n] = port;
    r->n++;
}

/* A 3-master CLUSTER SLOTS reply as Redis 7 sends it (node ids, and an
 * empty host for "unknown endpoint" on the last one). */
static const char slots3[] =
    "*3\r\n"
    "*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$4\r\naaaa\r\n"
    "*4\r\n:5461\r\n:10922\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$4\r\nbbbb\r\n"
    "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$4\r\ndddd\r\n"
    "*3\r\n:10923\r\n:16383\r\n*2\r\n$0\r\n\r\n:7002\r\n";

Test(redis, cluster_slots_reply)
{
    redisReply *rep = resp(slots3);
    ranges r = {0};
    cr_assert_eq(pc_redis_slots_parse(rep, on_range, &r, "10.0.0.9"), 3);
    cr_assert_eq(r.n, 3);
    cr_expect_eq(r.from[0], 0);
    cr_expect_eq(r.to[0], 5460);
    cr_expect_str_eq(r.host[0], "127.0.0.1");
    cr_expect_eq(r.port[0], 7000);
    cr_expect_eq(r.from[1], 5461);
    cr_expect_eq(r.port[1], 7001); /* the master, not the replica */
    cr_expect_str_eq(r.host[2], "10.0.0.9");
    cr_expect_eq(r.port[2], 7002);
    freeReplyObject(rep);
}

Test(redis, cluster_slots_reply_rejected)
{
    static const char *const bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        ":1\r\n",
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",  /* slot range */
        "*1\r\n*3\r\n:10\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* reversed */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",      /* port 0 */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:65536\r\n",  /* port */
        "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",            /* no port */
        "*1\r\n*2\r\n:0\r\n:1\r\n",                             /* no master */
        "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* string */
        "*1\r\n*3\r\n:-1\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* negative */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redisReply *rep = resp(bad[i]);
        ranges r = {0};
        cr_expect_eq(pc_redis_slots_parse(rep, on_range, &r, NULL), -1,
                     "case %zu", i);
        freeReplyObject(rep);
    }
    /* an empty host with no fallback cannot be used */
    redisReply *rep = resp("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:1\r\n");
    ranges r = {0};
    cr_expect_eq(pc_redis_slots_parse(rep, on_range, &r, NULL), -1);
    freeReplyObject(rep);
}

Test(redis, script_reply_pair)
{
    long long a = -1, b = -1;
    redisReply *rep = resp("*2\r\n:1\r\n:4000000\r\n");
    cr_assert_eq(pc_redis_reply_pair(rep, &a, &b), 0);
    cr_expect_eq(a, 1);
    cr_expect_eq(b, 4000000);
    freeReplyObject(rep);
    static const char *const bad[] = {
        "*3\r\n:1\r\n:2\r\n:3\r\n", "*1\r\n:1\r\n", ":1\r\n",
        "*2\r\n$1\r\n1\r\n:2\r\n",  "$-1\r\n",      "-NOSCRIPT x\r\n",
        "*2\r\n:1\r\n$-1\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rep = resp(bad[i]);
        cr_expect_eq(pc_redis_reply_pair(rep, &a, &b), -1, "%s", bad[i]);
        freeReplyObject(rep);
    }
}

/* ---- the script's result as headers ------------------------------------ */

/* pc_bucket_decide gives what pc_bucket_take gives for the same state, so
 * cluster and local scopes send the same headers. */
Test(redis, script_result_maps_like_the_local_bucket)
{
    pc_bucket_rate r;
    const char *why;
    cr_assert_eq(pc_bucket_rate_init(&r, 4, 1000000, 3, &why), 0);
    pc_bucket b;
    pc_bucket_init(&b, 1000);
    for (int i = 0; i < 5; i++) {
        pc_bucket_decision local, remote;
        pc_bucket_take(&b, &r, 1000 + (uint64_t)i * 100000, &local);
        cr_assert_eq(pc_bucket_decide(&r, b.deficit, local.allowed, &remote),
                     0);
        cr_expect_eq(remote.allowed, local.allowed, "take %d", i);
        cr_expect_eq(remote.limit, local.limit);
        cr_expect_eq(remote.remaining, local.remaining, "take %d", i);
        cr_expect_eq(remote.reset_s, local.reset_s);
        cr_expect_eq(remote.retry_s, local.retry_s);
    }
    /* burst 3, 4 per second: after one take, 2 left, full in 1 s */
    pc_bucket_decision d;
    cr_assert_eq(pc_bucket_decide(&r, 1000000, 1, &d), 0);
    cr_expect_eq(d.limit, 3);
    cr_expect_eq(d.remaining, 2);
    cr_expect_eq(d.reset_s, 1);
    cr_expect_eq(d.retry_s, 0);
    /* refused at 0.5 token: retry in 1 s (rounded up), nothing taken */
    cr_assert_eq(pc_bucket_decide(&r, 2500000, 0, &d), 0);
    cr_expect_eq(d.allowed, 0);
    cr_expect_eq(d.remaining, 0);
    cr_expect_eq(d.retry_s, 1);
    cr_expect_eq(d.reset_s, 1); /* 2.5 tokens at 4/s: 0.625 s */
    /* states no rate can reach: the reply is not trusted */
    cr_expect_eq(pc_bucket_decide(&r, 3000001, 1, &d), -1); /* over cap */
    cr_expect_eq(pc_bucket_decide(&r, 999999, 1, &d), -1);  /* < 1 token */
    cr_expect_eq(pc_bucket_decide(&r, 0, 0, &d), -1);       /* refused, full */
    cr_expect_eq(pc_bucket_decide(&r, 1000000, 2, &d), -1);
    cr_expect_eq(pc_bucket_decide(&r, 1000000, -1, &d), -1);
}

/* ---- the redis block ----------------------------------------------------- */

static void expect_load_errors(const char *yaml, const char *const *want,
                               size_t n)
{
    fake_env *e = fake_env_new();
    pc_errors errs;
    cr_assert_eq(fake_env_try_load(e, yaml, &errs), -1);
    for (size_t i = 0; i < errs.n && i < n; i++) {
        const char *m = strstr(errs.msgs[i], ".yaml:");
        cr_expect(m && !strcmp(m + 6, want[i]), "got: %s\nwant: %s",
                  errs.msgs[i], want[i]);
    }
    cr_expect_eq(errs.n, n, "expected %zu errors, got %zu", n, errs.n);
    pc_errors_free(&errs);
    fake_env_free(e);
}

Test(redis, config_errors)
{
    fake_env *e = fake_env_new();
    pc_errors errs;
    cr_assert_eq(fake_env_try_load(e,
                                   FAKE_LISTEN FAKE_UPSTREAM
                                   "redis:\n"
                                   "  address: localhost\n"
                                   "  db: 1000001\n"
                                   "  timeout: 2m\n"
                                   "  on_error: retry\n"
                                   "  pasword: x\n"
                                   "routes: []\n",
                                   &errs),
                 -1);
    static const char *const pos[] = {
        "4:12: invalid redis address 'localhost'",
        "5:7: value 1000001 for 'db' out of range",
        "6:12: value 2m for 'timeout' out of range",
        "7:13: invalid on_error 'retry'",
        "8:3: unknown key 'pasword' in redis"};
    cr_assert_eq(errs.n, 5, "got %zu errors", errs.n);
    for (size_t i = 0; i < 5; i++) {
        const char *m = strstr(errs.msgs[i], ".yaml:");
        cr_expect(m && !strncmp(m + 6, pos[i], strlen(pos[i])),
                  "got: %s\nwant: %s...", errs.msgs[i], pos[i]);
    }
    pc_errors_free(&errs);
    fake_env_free(e);

    static const char *const need[] = {
        "3:8: 'redis' needs 'address' (host:port or unix:/path)"};
    expect_load_errors(FAKE_LISTEN FAKE_UPSTREAM "redis: {db: 1}\n"
                                                 "routes: []\n",
                       need, 1);
    static const char *const big[] = {
        "3:40: rate_limit: burst x per too large for scope: cluster (burst x "
        "per in microseconds must stay below 2^53)"};
    expect_load_errors(FAKE_LISTEN FAKE_UPSTREAM
                       "rate_limit: {rate: 1, per: 24h, burst: 1000000, "
                       "scope: cluster}\n"
                       "redis: {address: 127.0.0.1:6379}\n"
                       "routes: []\n",
                       big, 1);
}

Test(redis, config_env_unix_and_json)
{
    setenv("PC_T_REDIS_PW", "s3cret", 1);
    fake_env *e = fake_env_from_yaml(FAKE_LISTEN FAKE_UPSTREAM
                                     "redis:\n"
                                     "  address: unix:/run/redis/redis.sock\n"
                                     "  password: ${PC_T_REDIS_PW}\n"
                                     "  db: 3\n"
                                     "  timeout: 20ms\n"
                                     "  on_error: deny\n"
                                     "rate_limit: {rate: 5, scope: cluster}\n"
                                     "routes: []\n");
    const pc_redis_opts *o = e->cfg->redis;
    cr_assert_not_null(o);
    cr_expect_eq(o->is_unix, 1);
    cr_expect_str_eq(o->host, "/run/redis/redis.sock");
    cr_expect_str_eq(o->password, "s3cret");
    cr_expect_eq(o->db, 3);
    cr_expect_eq(o->timeout_ms, 20);
    cr_expect_eq(o->deny, 1);
    json_t *j = pc_config_to_json(e->cfg);
    json_t *r = json_object_get(j, "redis");
    cr_expect_str_eq(json_string_value(json_object_get(r, "password")), "***");
    cr_expect_str_eq(json_string_value(json_object_get(r, "on_error")), "deny");
    json_t *rl = json_object_get(j, "rate_limit");
    cr_expect_str_eq(json_string_value(json_object_get(rl, "scope")),
                     "cluster");
    json_decref(j);
    fake_env_free(e);
    unsetenv("PC_T_REDIS_PW");

    pc_redis_opts a = {.address = "127.0.0.1:1", .timeout_ms = 50};
    pc_redis_opts b = a;
    cr_expect(pc_redis_opts_same(&a, &b));
    b.deny = 1; /* policy, not connection */
    cr_expect(pc_redis_opts_same(&a, &b));
    b.db = 1;
    cr_expect_not(pc_redis_opts_same(&a, &b));
    cr_expect_not(pc_redis_opts_same(&a, NULL));
    cr_expect(pc_redis_opts_same(NULL, NULL));
}

/* ---- the stage, asynchronously ----------------------------------------- */

/* A TCP socket that completes handshakes (the kernel's backlog) and never
 * answers: a stuck Redis. Returns the fd; *port gets its port. */
static int silent_listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static fake_env *cluster_env(uint16_t port, const char *on_error,
                             struct event_base **base)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             FAKE_LISTEN FAKE_UPSTREAM
             "redis: {address: \"127.0.0.1:%u\", timeout: 50ms, "
             "on_error: %s}\n"
             "routes:\n"
             "  - name: r\n"
             "    match: {path: /r}\n"
             "    upstream: u\n"
             "    rate_limit: {rate: 1, per: 1m, burst: 2, scope: cluster}\n",
             port, on_error);
    fake_env *e = fake_env_from_yaml(yaml);
    *base = event_base_new();
    cr_assert_not_null(*base);
    e->worker.base = *base;
    e->worker.redis = pc_redis_new(*base, e->cfg->redis);
    return e;
}

static void cluster_env_free(fake_env *e, struct event_base *base)
{
    pc_redis_free(e->worker.redis);
    e->worker.redis = NULL;
    fake_env_free(e);
    event_base_free(base);
}

/* Runs base until pred(arg) or ms pass; returns the elapsed ms. */
static uint64_t loop_until(struct event_base *base, int (*pred)(void *),
                           void *arg, uint64_t ms)
{
    uint64_t t0 = pc_now_ns();
    while (!pred(arg) && pc_now_ns() - t0 < ms * 1000000ull) {
        struct timeval tick = {0, 5000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    return (pc_now_ns() - t0) / 1000000ull;
}

static int answered(void *req)
{
    return fake_rec_of(req)->resp_status != 0;
}

Test(redis, stuck_redis_deny_answers_503_within_timeout)
{
    uint16_t port;
    int lfd = silent_listener(&port);
    struct event_base *base;
    fake_env *e = cluster_env(port, "deny", &base);
    /* the seed connects; its CLUSTER SLOTS never comes back */
    pc_req *req = fake_req_new(e, "GET", "/r", "gw.test");
    fake_result res = fake_run(req);
    cr_assert_str_eq(res.stage, "rate_limit");
    cr_assert_eq(res.verdict, PC_WAIT);
    uint64_t took = loop_until(base, answered, req, 2000);
    fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->resp_status, 503, "took %llu ms",
                 (unsigned long long)took);
    cr_expect_eq(rec->code, PC_ERR_UPSTREAM_UNAVAILABLE);
    cr_expect_lt(took, 500, "answered after %llu ms (timeout 50ms)",
                 (unsigned long long)took);
    const pc_header *h = pc_headers_get(&rec->resp_headers, "Retry-After");
    cr_assert_not_null(h);
    cr_expect_eq(h->vlen, 1);
    cr_expect_eq(h->value[0], '1');
    cr_expect_null(pc_headers_get(&rec->resp_headers, "RateLimit-Limit"));
    cr_expect_eq(pc_redis_get_stats(e->worker.redis)->timeouts, 1);
    fake_req_free(req);
    cluster_env_free(e, base);
    close(lfd);
}

static int timed_out(void *r)
{
    return pc_redis_get_stats(r)->timeouts > 0;
}

/* The client leaves while the decision is pending: the late answer finds
 * the request gone and touches nothing (ASan watches). */
Test(redis, reply_after_the_client_left_is_dropped)
{
    uint16_t port;
    int lfd = silent_listener(&port);
    struct event_base *base;
    fake_env *e = cluster_env(port, "deny", &base);
    pc_req *req = fake_req_new(e, "GET", "/r", "gw.test");
    fake_result res = fake_run(req);
    cr_assert_eq(res.verdict, PC_WAIT);
    fake_req_free(req); /* the client went */
    loop_until(base, timed_out, e->worker.redis, 2000);
    cr_expect_eq(pc_redis_get_stats(e->worker.redis)->timeouts, 1);
    cluster_env_free(e, base);
    close(lfd);
}

/* A request still waiting when the client is freed (a reload's changed
 * redis block) is answered by on_error before the free returns once its
 * decision was sent (the end of the turn it came in), or at the end of
 * that turn when there is no client any more. */
Test(redis, client_freed_answers_pending)
{
    uint16_t port;
    int lfd = silent_listener(&port);
    struct event_base *base;
    fake_env *e = cluster_env(port, "deny", &base);
    pc_req *req = fake_req_new(e, "GET", "/r", "gw.test");
    cr_assert_eq(fake_run(req).verdict, PC_WAIT);
    event_base_loop(base, EVLOOP_NONBLOCK); /* the turn ends: sent */
    cr_assert_eq(fake_rec_of(req)->resp_status, 0, "still waiting");
    /* another one, not sent yet when the client goes */
    pc_req *later = fake_req_new(e, "GET", "/r", "gw.test");
    cr_assert_eq(fake_run(later).verdict, PC_WAIT);
    pc_redis_free(e->worker.redis);
    e->worker.redis = NULL;
    cr_expect_eq(fake_rec_of(req)->resp_status, 503);
    cr_expect_eq(fake_rec_of(later)->resp_status, 0);
    event_base_loop(base, EVLOOP_NONBLOCK); /* its turn ends */
    cr_expect_eq(fake_rec_of(later)->resp_status, 503);
    fake_req_free(later);
    fake_req_free(req);
    cluster_env_free(e, base);
    close(lfd);
}

/* Nothing listens: the connection is refused, and a request that comes
 * while the client is in its reconnect backoff is decided at once. */
Test(redis, refused_connection_applies_on_error_at_once)
{
    uint16_t port;
    int lfd = silent_listener(&port);
    close(lfd); /* the port is now closed */
    struct event_base *base;
    fake_env *e = cluster_env(port, "deny", &base);
    pc_req *req = fake_req_new(e, "GET", "/r", "gw.test");
    fake_result res = fake_run(req);
    if (res.verdict == PC_WAIT) /* the refusal had not arrived yet */
        loop_until(base, answered, req, 1000);
    cr_expect_eq(fake_rec_of(req)->resp_status, 503);
    fake_req_free(req);
    /* now in backoff: decided at the end of the turn, not after the
     * timeout (50 ms) */
    req = fake_req_new(e, "GET", "/r", "gw.test");
    res = fake_run(req);
    cr_expect_eq(res.verdict, PC_WAIT);
    loop_until(base, answered, req, 1000);
    cr_expect_eq(fake_rec_of(req)->resp_status, 503);
    cr_expect_eq(pc_redis_get_stats(e->worker.redis)->timeouts, 0,
                 "refused at once, not timed out");
    fake_req_free(req);
    cluster_env_free(e, base);
}
