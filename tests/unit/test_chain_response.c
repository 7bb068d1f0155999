/* test_chain_response.c: the response side of the stage interface
 * (chain.h): on_response hooks, extra response headers, per-request stage
 * slots, body filters (transform, tee, backpressure) and wait tokens.
 *
 * The requests are fake_req.h's (a real generation, a recording sink that
 * does what conn.c's sink does on the response side) running a test stage
 * table through the real chain (req->stages, pc_chain_start): stages a, b,
 * c record their on_response calls and install filters when a test asks;
 * "answer" plays the proxy (a head, body pieces with the producer's
 * backpressure rule, end) or a stage that answers with a gateway error;
 * "never" must never run. No sockets. */
#include <criterion/criterion.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "fake_req.h"

/* ------------------------------------------------------- test state */

enum { ANSWER_PROXY, ANSWER_ERROR };

static struct {
    char order[32];           /* tags of on_response calls, in call order */
    unsigned seen_self[8];    /* `self` each on_response got, by tag order */
    int answer;               /* how the answer stage answers */
    int stop_at_b;            /* stage b answers 403 itself */
    int extra;                /* stage b adds extra response headers */
    int filters;              /* b: upper, c: wrap (changes the length) */
    int tee, slow;            /* a: tee filter / slow (holding) filter */
    const char *pieces[4];    /* proxied body, in pieces */
    unsigned npieces, next_piece;
    unsigned paused, resumes;
    char tee_buf[256];
    size_t tee_len;
    unsigned tee_last, releases;
    char held[256];           /* slow filter: bytes held back */
    size_t held_len;
    unsigned never_ran;
    /* waits */
    pc_wait tok;
    unsigned cancels, cancel_stage;
} T;

static void order_add(char tag, unsigned self)
{
    size_t n = strlen(T.order);
    cr_assert_lt(n + 1, sizeof T.order);
    T.seen_self[n < 8 ? n : 7] = self;
    T.order[n] = tag;
    T.order[n + 1] = '\0';
}

static void add_header(pc_req *req, pc_resp *resp, const char *n, const char *v)
{
    pc_headers_add(&resp->headers, req->arena, n, strlen(n), v, strlen(v));
}

/* ---------------------------------------------------------- filters */

/* Uppercases (same length). */
static pc_body_status upper_filter(pc_req *req, unsigned slot, const char *data,
                                   size_t len, int last)
{
    char buf[256];
    cr_assert_leq(len, sizeof buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)toupper((unsigned char)data[i]);
    return pc_body_next(req, slot, buf, len, last);
}

static const pc_body_filter upper = {.filter = upper_filter};

/* Wraps the whole body in <b>...</b> (lower case: the uppercase filter,
 * further downstream, shows the order). State in the stage's slot. */
static pc_body_status wrap_filter(pc_req *req, unsigned slot, const char *data,
                                  size_t len, int last)
{
    if (!pc_req_slot(req, slot)) {
        pc_req_set_slot(req, slot, (void *)"started");
        pc_body_next(req, slot, "<b>", 3, 0);
    }
    if (len)
        pc_body_next(req, slot, data, len, 0);
    if (last)
        return pc_body_next(req, slot, "</b>", 4, 1);
    return PC_BODY_OK;
}

static void count_release(pc_req *req, unsigned slot)
{
    (void)req;
    (void)slot;
    T.releases++;
}

static const pc_body_filter wrap = {
    .filter = wrap_filter, .release = count_release, .changes_length = 1};

/* Copies what passes (a cache store would) and passes it on unchanged. */
static pc_body_status tee_filter(pc_req *req, unsigned slot, const char *data,
                                 size_t len, int last)
{
    cr_assert_lt(T.tee_len + len, sizeof T.tee_buf);
    if (len) /* data may be NULL at last */
        memcpy(T.tee_buf + T.tee_len, data, len);
    T.tee_len += len;
    T.tee_last += last != 0;
    return pc_body_next(req, slot, data, len, last);
}

static const pc_body_filter tee = {.filter = tee_filter, .release = count_release};

/* Holds every piece until the test lets it go (a slow side store, or a
 * compressor's window): "I buffered, slow down". */
static pc_body_status slow_filter(pc_req *req, unsigned slot, const char *data,
                                  size_t len, int last)
{
    cr_assert_lt(T.held_len + len, sizeof T.held);
    if (len)
        memcpy(T.held + T.held_len, data, len);
    T.held_len += len;
    if (last) { /* at the end everything goes */
        pc_body_status st = pc_body_next(req, slot, T.held, T.held_len, 1);
        T.held_len = 0;
        return st;
    }
    return PC_BODY_SLOW;
}

static const pc_body_filter slow = {.filter = slow_filter};

/* The slow filter's own later event: passes what it held, then is ready. */
static void slow_drain(pc_req *req, unsigned slot)
{
    pc_body_next(req, slot, T.held, T.held_len, 0);
    T.held_len = 0;
    pc_body_ready(req, slot);
}

/* ----------------------------------------------------------- stages */

static pc_verdict a_request(pc_req *req)
{
    pc_req_set_slot(req, req->stage, (void *)"slot-a");
    if (T.tee)
        pc_body_filter_add(req, req->stage, &tee);
    if (T.slow)
        pc_body_filter_add(req, req->stage, &slow);
    return PC_NEXT;
}

static void a_response(pc_req *req, unsigned self, pc_resp *resp)
{
    order_add('a', self);
    char v[16];
    snprintf(v, sizeof v, "%d", resp->status);
    add_header(req, resp, "X-A-Saw-Status", v);
    /* a hook further down the response path saw what later hooks did */
    if (pc_headers_get(&resp->headers, "X-C"))
        add_header(req, resp, "X-A-Saw-C", "1");
}

static pc_verdict b_request(pc_req *req)
{
    pc_req_set_slot(req, req->stage, (void *)"slot-b");
    if (T.filters)
        pc_body_filter_add(req, req->stage, &upper);
    if (T.extra) {
        pc_req_add_resp_header(req, "WWW-Authenticate", "Bearer realm=\"t\"");
        pc_req_add_resp_header(req, "Retry-After", "7");
        pc_req_add_resp_header(req, "RateLimit-Limit", "100");
    }
    if (T.stop_at_b) {
        req->sink->error(req, PC_ERR_FORBIDDEN, NULL);
        return PC_DONE;
    }
    return PC_NEXT;
}

static void b_response(pc_req *req, unsigned self, pc_resp *resp)
{
    (void)req;
    (void)resp;
    order_add('b', self);
}

static pc_verdict c_request(pc_req *req)
{
    if (T.filters)
        pc_body_filter_add(req, req->stage, &wrap);
    return PC_NEXT;
}

static void c_response(pc_req *req, unsigned self, pc_resp *resp)
{
    order_add('c', self);
    add_header(req, resp, "X-C", "1");
    pc_headers_remove(&resp->headers, "Server"); /* like headers.response */
}

/* The producer of a proxied body, with forward.c's rule: no more body
 * while the sink's backlog is over PC_OUT_HWM; handler->resume goes on. */
static void produce(pc_req *req)
{
    while (T.next_piece < T.npieces) {
        if (req->sink->backlog(req) > PC_OUT_HWM) {
            T.paused++;
            return;
        }
        const char *p = T.pieces[T.next_piece++];
        req->sink->body(req, p, strlen(p));
    }
    req->handler = NULL;
    req->sink->end(req);
}

static void producer_resume(pc_req *req)
{
    T.resumes++;
    produce(req);
}

static const pc_handler_ops producer_ops = {.resume = producer_resume};

static pc_verdict answer_request(pc_req *req)
{
    if (T.answer == ANSWER_ERROR) {
        req->sink->error(req, PC_ERR_RATE_LIMITED, NULL);
        return PC_DONE;
    }
    size_t total = 0;
    for (unsigned i = 0; i < T.npieces; i++)
        total += strlen(T.pieces[i]);
    pc_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    resp.http_minor = 1;
    add_header(req, &resp, "Content-Type", "text/plain");
    add_header(req, &resp, "Server", "upstream");
    resp.framing = (pc_framing){.kind = PC_FRAME_LENGTH, .length = total,
                                .has_length = 1};
    if (req->method_bit == PC_M_HEAD)
        resp.framing.kind = PC_FRAME_NONE;
    req->sink->head(req, &resp);
    req->handler = &producer_ops;
    produce(req);
    return PC_DONE;
}

static void answer_response(pc_req *req, unsigned self, pc_resp *resp)
{
    (void)req;
    (void)resp;
    order_add('d', self);
}

static pc_verdict never_request(pc_req *req)
{
    (void)req;
    T.never_ran++;
    return PC_NEXT;
}

static void never_response(pc_req *req, unsigned self, pc_resp *resp)
{
    (void)req;
    (void)resp;
    order_add('z', self);
}

static void w_cancel(pc_req *req, unsigned stage)
{
    cr_assert_not_null(req);
    T.cancels++;
    T.cancel_stage = stage;
}

static pc_verdict w_request(pc_req *req)
{
    T.tok = pc_wait_begin(req, w_cancel);
    return PC_WAIT;
}

static const pc_stage_ops st_a = {.name = "a", .on_request = a_request,
                                  .on_response = a_response};
static const pc_stage_ops st_b = {.name = "b", .on_request = b_request,
                                  .on_response = b_response};
static const pc_stage_ops st_c = {.name = "c", .on_request = c_request,
                                  .on_response = c_response};
static const pc_stage_ops st_answer = {.name = "answer",
                                       .on_request = answer_request,
                                       .on_response = answer_response};
static const pc_stage_ops st_never = {.name = "never",
                                      .on_request = never_request,
                                      .on_response = never_response};
static const pc_stage_ops st_wait = {.name = "wait", .on_request = w_request};

static const pc_stage_ops *const table_abc[] = {&st_a, &st_b, &st_c,
                                                &st_answer, &st_never};
static const pc_stage_ops *const table_wait[] = {&st_a, &st_wait, &st_answer};

#define N(t) (unsigned)(sizeof t / sizeof t[0])

/* ---------------------------------------------------------- helpers */

static const char yaml[] = FAKE_LISTEN FAKE_UPSTREAM
    "routes:\n"
    "  - name: r\n"
    "    match: {path: /}\n"
    "    upstream: u\n";

static fake_env *env;

static void setup(void)
{
    memset(&T, 0, sizeof T);
    T.pieces[0] = "hello ";
    T.pieces[1] = "world";
    T.npieces = 2;
    env = fake_env_from_yaml(yaml);
}

static void teardown(void)
{
    fake_env_free(env);
}

static pc_req *new_req(const pc_stage_ops *const *table, unsigned n,
                       const char *method)
{
    pc_req *req = fake_req_new(env, method, "/x", "gw.test");
    req->stages = table;
    req->nstages = n;
    return req;
}

static pc_req *run_abc(const char *method)
{
    pc_req *req = new_req(table_abc, N(table_abc), method);
    pc_chain_start(req);
    return req;
}

TestSuite(chain_response, .init = setup, .fini = teardown);

/* ------------------------------------------------------ on_response */

Test(chain_response, on_response_runs_in_reverse_order_on_proxied)
{
    pc_req *req = run_abc("GET");
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->heads, 1);
    cr_assert_eq(rec->sent, 1);
    cr_assert_str_eq(T.order, "dcba", "hooks ran as '%s'", T.order);
    /* each hook got its own index */
    cr_assert_eq(T.seen_self[0], 3);
    cr_assert_eq(T.seen_self[3], 0);
    cr_assert_eq(T.never_ran, 0, "the stage after the answer never runs");
    /* changes made by the hooks are on the response as sent */
    cr_assert_str_eq(fake_resp_header(req, "X-C"), "1");
    cr_assert_str_eq(fake_resp_header(req, "X-A-Saw-Status"), "200");
    cr_assert_str_eq(fake_resp_header(req, "X-A-Saw-C"), "1", "a runs after c");
    cr_assert_null(fake_resp_header(req, "Server"), "c removed it");
    cr_assert_str_eq(rec->body, "hello world");
    cr_assert_eq(rec->ends, 1);
    cr_assert_eq(rec->resp_framing.kind, PC_FRAME_LENGTH);
    fake_req_free(req);
}

Test(chain_response, on_response_runs_on_gateway_errors)
{
    T.answer = ANSWER_ERROR;
    pc_req *req = run_abc("GET");
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->errors, 1);
    cr_assert_eq(rec->heads, 0, "no proxied head");
    cr_assert_eq(rec->sent, 1, "but a head was sent");
    cr_assert_str_eq(T.order, "dcba");
    cr_assert_eq(rec->resp_status, 429);
    cr_assert_str_eq(fake_resp_header(req, "X-A-Saw-Status"), "429");
    cr_assert_str_eq(fake_resp_header(req, "Content-Type"), "application/json");
    cr_assert(strstr(rec->body, "\"rate_limited\""), "body: %s", rec->body);
    cr_assert_eq(rec->resp_framing.kind, PC_FRAME_LENGTH);
    cr_assert_eq(rec->resp_framing.length, rec->body_len);
    fake_req_free(req);
}

Test(chain_response, on_response_only_for_stages_that_ran)
{
    T.stop_at_b = 1;
    pc_req *req = run_abc("GET");
    cr_assert_eq(fake_rec_of(req)->resp_status, 403);
    cr_assert_str_eq(T.order, "ba", "c and answer did not run: '%s'", T.order);
    fake_req_free(req);
}

Test(chain_response, no_stage_ran_no_hook)
{
    /* a parse error answered before the chain started */
    pc_req *req = new_req(table_abc, N(table_abc), "GET");
    req->sink->error(req, PC_ERR_BAD_REQUEST, NULL);
    cr_assert_str_eq(T.order, "");
    cr_assert_eq(fake_rec_of(req)->resp_status, 400);
    fake_req_free(req);
}

/* ---------------------------------------------------- extra headers */

Test(chain_response, several_extra_headers_on_an_error)
{
    T.extra = 1;
    T.stop_at_b = 1;
    pc_req *req = run_abc("GET");
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->resp_status, 403);
    cr_assert_str_eq(fake_resp_header(req, "WWW-Authenticate"), "Bearer realm=\"t\"");
    cr_assert_str_eq(fake_resp_header(req, "Retry-After"), "7");
    cr_assert_str_eq(fake_resp_header(req, "RateLimit-Limit"), "100");
    cr_assert_eq(pc_headers_count(&rec->resp_headers, "Retry-After"), 1);
    fake_req_free(req);
}

Test(chain_response, extra_headers_reach_proxied_responses_and_hooks)
{
    T.extra = 1;
    pc_req *req = run_abc("GET");
    cr_assert_eq(fake_rec_of(req)->resp_status, 200);
    cr_assert_str_eq(fake_resp_header(req, "RateLimit-Limit"), "100");
    cr_assert_str_eq(fake_resp_header(req, "Retry-After"), "7");
    /* the producer's own head did not carry them: the chain added them */
    cr_assert_null(pc_headers_get(&fake_rec_of(req)->head_headers, "Retry-After"));
    fake_req_free(req);
}

Test(chain_response, allow_header_on_405_from_the_error_table)
{
    pc_req *req = new_req(table_abc, N(table_abc), "DELETE");
    req->match.allow = PC_M_GET | PC_M_POST;
    req->sink->error(req, PC_ERR_METHOD_NOT_ALLOWED, NULL);
    cr_assert_str_eq(fake_resp_header(req, "Allow"), "GET, POST");
    fake_req_free(req);
}

/* ------------------------------------------------------------ slots */

Test(chain_response, slots_are_per_stage_and_per_request)
{
    pc_req *r1 = new_req(table_abc, N(table_abc), "GET");
    cr_assert_null(pc_req_slot(r1, 0), "no slot before a stage sets it");
    cr_assert_null(r1->ext, "nothing allocated until a stage asks");
    pc_req *r2 = run_abc("GET");
    pc_chain_start(r1);
    cr_assert_str_eq(pc_req_slot(r1, 0), "slot-a");
    cr_assert_str_eq(pc_req_slot(r1, 1), "slot-b");
    cr_assert_null(pc_req_slot(r1, 2), "c has not set its slot");
    cr_assert_null(pc_req_slot(r1, 99), "out of range reads NULL");
    int mine = 7;
    pc_req_set_slot(r1, 2, &mine);
    cr_assert_eq(pc_req_slot(r1, 2), &mine);
    cr_assert_null(pc_req_slot(r2, 2), "another request's slot is untouched");
    cr_assert_str_eq(pc_req_slot(r2, 0), "slot-a");
    fake_req_free(r1);
    fake_req_free(r2);
}

Test(chain_response, stage_index_from_the_table)
{
    cr_assert_eq(pc_chain_stage(pc_chain_index(&pc_stage_auth)), &pc_stage_auth);
    cr_assert_eq(pc_chain_stage(pc_chain_index(&pc_stage_proxy)), &pc_stage_proxy);
}

/* ------------------------------------------------------ body filters */

Test(chain_response, no_filter_costs_nothing)
{
    pc_req *req = run_abc("GET");
    cr_assert_eq(pc_chain_filtering(req), 0);
    cr_assert_eq(fake_rec_of(req)->filtered, 0, "bytes went straight out");
    cr_assert_eq(pc_chain_body_held(req), 0);
    fake_req_free(req);
}

Test(chain_response, transforming_filters_switch_to_chunked)
{
    T.filters = 1;
    pc_req *req = run_abc("GET");
    const fake_rec *rec = fake_rec_of(req);
    /* c (wrap) is upstream of b (upper): reverse stage order */
    cr_assert_str_eq(rec->body, "<B>HELLO WORLD</B>", "body: %s", rec->body);
    cr_assert_eq(rec->resp_framing.kind, PC_FRAME_CHUNKED,
                 "the length changed: chunked, not Content-Length");
    cr_assert_eq(rec->resp_framing.has_length, 0);
    cr_assert_eq(rec->ends, 1);
    cr_assert_gt(rec->filtered, 0);
    cr_assert_eq(T.releases, 0);
    fake_req_free(req);
    cr_assert_eq(T.releases, 1, "release at request free");
}

Test(chain_response, transforming_filter_http10_is_close_delimited)
{
    T.filters = 1;
    pc_req *req = new_req(table_abc, N(table_abc), "GET");
    req->http_minor = 0;
    pc_chain_start(req);
    cr_assert_eq(fake_rec_of(req)->resp_framing.kind, PC_FRAME_CLOSE);
    cr_assert_str_eq(fake_rec_of(req)->body, "<B>HELLO WORLD</B>");
    fake_req_free(req);
}

Test(chain_response, filters_apply_to_gateway_error_bodies)
{
    T.filters = 1;
    T.answer = ANSWER_ERROR;
    pc_req *req = run_abc("GET");
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->resp_framing.kind, PC_FRAME_CHUNKED);
    cr_assert(strncmp(rec->body, "<B>{\"ERROR\":\"RATE_LIMITED\"", 26) == 0,
              "body: %s", rec->body);
    fake_req_free(req);
}

Test(chain_response, bodyless_response_never_reaches_filters)
{
    T.filters = 1;
    T.tee = 1;
    pc_req *req = run_abc("HEAD");
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->resp_framing.kind, PC_FRAME_NONE);
    cr_assert_eq(rec->resp_framing.has_length, 0, "no Content-Length: it would change");
    cr_assert_eq(rec->body_len, 0);
    cr_assert_eq(T.tee_len + T.tee_last, 0);
    fake_req_free(req);
}

Test(chain_response, tee_filter_sees_every_byte_and_keeps_the_length)
{
    T.tee = 1;
    T.pieces[2] = "!";
    T.npieces = 3;
    pc_req *req = run_abc("GET");
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_str_eq(rec->body, "hello world!");
    cr_assert_eq(T.tee_len, 12);
    cr_assert(memcmp(T.tee_buf, "hello world!", 12) == 0);
    cr_assert_eq(T.tee_last, 1, "last seen once");
    cr_assert_eq(rec->resp_framing.kind, PC_FRAME_LENGTH, "length unchanged");
    cr_assert_eq(rec->resp_framing.length, 12);
    fake_req_free(req);
    cr_assert_eq(T.releases, 1);
}

Test(chain_response, slow_filter_holds_the_producer_back)
{
    T.slow = 1;
    T.pieces[2] = "!";
    T.npieces = 3;
    pc_req *req = run_abc("GET");
    fake_rec *rec = fake_rec_of(req);
    /* the first piece was held: the producer paused as on a full socket */
    cr_assert_eq(T.paused, 1);
    cr_assert_eq(T.next_piece, 1);
    cr_assert_eq(rec->body_len, 0);
    cr_assert_gt(req->sink->backlog(req), PC_OUT_HWM);
    cr_assert_not_null(req->handler, "the producer waits for resume");

    /* the filter passes its bytes, but the client itself is backed up:
     * no resume yet (conn's write_cb resumes below the low watermark) */
    rec->backlog = PC_OUT_LWM + 1;
    slow_drain(req, 0);
    cr_assert_str_eq(rec->body, "hello ");
    cr_assert_eq(T.resumes, 0);
    cr_assert_leq(req->sink->backlog(req), PC_OUT_HWM, "the filter is not slow any more");
    rec->backlog = 0;
    req->handler->resume(req); /* what write_cb does once drained */
    cr_assert_eq(T.resumes, 1);
    cr_assert_eq(T.next_piece, 2, "one more piece, then held again");
    cr_assert_eq(T.paused, 2);

    /* ready with a drained client: the chain resumes the producer, whose
     * last piece is held too, then everything goes at the end */
    slow_drain(req, 0);
    cr_assert_eq(T.resumes, 2);
    cr_assert_eq(T.paused, 2);
    cr_assert_eq(rec->ends, 1, "the producer finished");
    cr_assert_str_eq(rec->body, "hello world!");
    cr_assert_null(req->handler);
    cr_assert_eq(pc_chain_body_held(req), 0);
    fake_req_free(req);
}

Test(chain_response, filter_after_the_head_is_refused)
{
    pc_req *req = run_abc("GET");
    pc_body_filter_add(req, 1, &upper);
    cr_assert_eq(pc_chain_filtering(req), 0);
    fake_req_free(req);
}

/* ------------------------------------------------------ wait tokens */

Test(chain_response, wait_resume_continues_after_the_waiting_stage)
{
    pc_req *req = new_req(table_wait, N(table_wait), "GET");
    pc_chain_start(req);
    const fake_rec *rec = fake_rec_of(req);
    cr_assert_eq(rec->sent, 0, "waiting");
    cr_assert_eq(req->stage, 1);
    cr_assert_eq(pc_wait_resume(T.tok, PC_NEXT), 1);
    cr_assert_eq(rec->heads, 1, "the answer stage ran");
    cr_assert_str_eq(T.order, "da", "the waiting stage has no hook");
    cr_assert_eq(pc_wait_resume(T.tok, PC_NEXT), 0, "a token works once");
    cr_assert_eq(rec->heads, 1);
    fake_req_free(req);
    cr_assert_eq(T.cancels, 0, "settled: never cancelled");
}

Test(chain_response, wait_take_then_answer_directly)
{
    pc_req *req = new_req(table_wait, N(table_wait), "GET");
    pc_chain_start(req);
    pc_req *back = pc_wait_take(T.tok);
    cr_assert_eq(back, req);
    back->sink->error(back, PC_ERR_UPSTREAM_UNAVAILABLE, NULL);
    cr_assert_eq(fake_rec_of(req)->resp_status, 503);
    cr_assert_eq(pc_wait_resume(T.tok, PC_NEXT), 0);
    fake_req_free(req);
    cr_assert_eq(T.cancels, 0);
}

Test(chain_response, resume_after_cancel_is_a_noop)
{
    pc_req *req = new_req(table_wait, N(table_wait), "GET");
    pc_chain_start(req);
    pc_wait tok = T.tok;
    /* the client left: conn frees the request while it waits */
    fake_req_free(req);
    cr_assert_eq(T.cancels, 1, "the stage was told");
    cr_assert_eq(T.cancel_stage, 1, "with its own index");
    /* the reply arrives later: nothing happens (ASan: nothing is read) */
    cr_assert_eq(pc_wait_resume(tok, PC_NEXT), 0);
    cr_assert_null(pc_wait_take(tok));
    cr_assert_eq(T.cancels, 1);
}

Test(chain_response, resume_on_a_reused_request_object_is_a_noop)
{
    pc_req *req = new_req(table_wait, N(table_wait), "GET");
    pc_chain_start(req);
    pc_wait old = T.tok;
    /* conn reuses the object: the request is released (its wait
     * cancelled) and the same memory starts a new request, which waits
     * in its turn */
    pc_chain_req_free(req);
    cr_assert_eq(T.cancels, 1);
    req->nran = req->stage = 0;
    pc_chain_start(req);
    pc_wait cur = T.tok;
    cr_assert_eq(cur.req, old.req, "same object");
    cr_assert_neq(cur.gen, old.gen, "new generation");
    /* the old reply arrives: the new request does not move */
    cr_assert_eq(pc_wait_resume(old, PC_NEXT), 0);
    cr_assert_eq(fake_rec_of(req)->sent, 0);
    cr_assert_null(pc_wait_take(old));
    /* its own reply does */
    cr_assert_eq(pc_wait_resume(cur, PC_NEXT), 1);
    cr_assert_eq(fake_rec_of(req)->heads, 1);
    fake_req_free(req);
    cr_assert_eq(T.cancels, 1);
}

Test(chain_response, many_waits_reuse_cells)
{
    pc_wait toks[100];
    for (int i = 0; i < 100; i++) {
        pc_req *req = new_req(table_wait, N(table_wait), "GET");
        pc_chain_start(req);
        toks[i] = T.tok;
        fake_req_free(req);
    }
    for (int i = 0; i < 100; i++)
        cr_assert_eq(pc_wait_resume(toks[i], PC_NEXT), 0, "token %d", i);
    cr_assert_eq(T.cancels, 100);
}
