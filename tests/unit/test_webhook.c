/* Webhook deliveries (proxy/webhook.c): signature, backoff schedule with an
 * injected clock and random source, the bounded queue, the body. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/events.h"
#include "portcullis/webhook.h"

Test(webhook, signature_known_vector)
{
    char sig[72];
    const char *body = "The quick brown fox jumps over the lazy dog";
    pc_webhook_sign("key", body, strlen(body), sig);
    cr_assert_str_eq(sig, "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a1"
                          "4946175997479dbc2d1a3cd8");
    pc_webhook_sign("", "", 0, sig);
    cr_assert_str_eq(sig, "sha256=b613679a0814d9ec772f95d778c35fc5ff1697c4"
                          "93715653c6c712144292c5ad");
}

typedef struct fake {
    uint64_t now;
    double r;
} fake;

static uint64_t fake_now(void *arg) { return ((fake *)arg)->now; }
static double fake_rand(void *arg) { return ((fake *)arg)->r; }

Test(webhook, backoff_schedule_without_jitter)
{
    /* r = 0.5: factor 1.0 exactly. */
    static const uint64_t want[] = {1000,   2000,   4000,   8000,  16000,
                                    32000,  64000,  128000, 256000, 300000,
                                    300000, 300000};
    for (unsigned a = 1; a <= 12; a++)
        cr_assert_eq(pc_webhook_backoff_ms(a, 0.5), want[a - 1], "attempt %u", a);
    cr_assert_eq(pc_webhook_backoff_ms(1000, 0.5), 300000);
}

Test(webhook, backoff_jitter_bounds)
{
    for (unsigned a = 1; a <= 12; a++) {
        uint64_t mid = pc_webhook_backoff_ms(a, 0.5);
        uint64_t lo = pc_webhook_backoff_ms(a, 0.0);
        uint64_t hi = pc_webhook_backoff_ms(a, 0.999999);
        cr_assert_eq(lo, mid * 8 / 10, "attempt %u", a);
        cr_assert(hi < mid * 12 / 10 + 1 && hi >= mid * 12 / 10 - 1);
        /* Out-of-range random values are clamped, never beyond ±20%. */
        cr_assert_geq(pc_webhook_backoff_ms(a, -5), lo);
        cr_assert_leq(pc_webhook_backoff_ms(a, 7), mid * 12 / 10);
    }
}

Test(webhook, next_at_uses_injected_clock)
{
    fake f = {.now = 1000000, .r = 0.0};
    pc_webhook_clock c = {fake_now, fake_rand, &f};
    cr_assert_eq(pc_webhook_next_at(&c, 1), 1000000 + 800);
    f.r = 0.5;
    f.now = 5;
    cr_assert_eq(pc_webhook_next_at(&c, 3), 5 + 4000);
    /* The schedule of max_attempts 8: the waits between attempts. */
    uint64_t t = 0;
    f.now = 0;
    for (unsigned a = 1; a < 8; a++) {
        uint64_t at = pc_webhook_next_at(&c, a);
        cr_assert_eq(at - f.now, 1000ull << (a - 1));
        f.now = at;
        t = at;
    }
    cr_assert_eq(t, 127000);
}

Test(webhook, queue_overflow)
{
    pc_whq q;
    pc_whq_init(&q, 4);
    int v[6];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pc_whq_push(&q, &v[i]), 0);
    cr_assert_eq(pc_whq_push(&q, &v[4]), -1);
    cr_assert_eq(pc_whq_pop(&q), &v[0]);
    cr_assert_eq(pc_whq_push(&q, &v[5]), 0); /* wraps */
    cr_assert_eq(pc_whq_push(&q, &v[4]), -1);
    cr_assert_eq(pc_whq_pop(&q), &v[1]);
    cr_assert_eq(pc_whq_pop(&q), &v[2]);
    cr_assert_eq(pc_whq_pop(&q), &v[3]);
    cr_assert_eq(pc_whq_pop(&q), &v[5]);
    cr_assert_null(pc_whq_pop(&q));
    pc_whq_free(&q);
}

Test(webhook, body_shape)
{
    char id[33], id2[33];
    size_t len;
    char *b = pc_webhook_body(PC_EV_CIRCUIT_OPEN, "api", "http://10.0.0.1:80",
                              "5 consecutive failures", id, &len);
    cr_assert_not_null(b);
    cr_assert_eq(strlen(b), len);
    json_error_t e;
    json_t *o = json_loads(b, 0, &e);
    cr_assert_not_null(o);
    cr_assert_str_eq(json_string_value(json_object_get(o, "id")), id);
    cr_assert_eq(strlen(id), 32);
    cr_assert_str_eq(json_string_value(json_object_get(o, "type")),
                     "circuit_open");
    const char *t = json_string_value(json_object_get(o, "time"));
    cr_assert(t && strlen(t) == 24 && t[10] == 'T' && t[23] == 'Z');
    json_t *d = json_object_get(o, "data");
    cr_assert_str_eq(json_string_value(json_object_get(d, "upstream")), "api");
    cr_assert_str_eq(json_string_value(json_object_get(d, "target")),
                     "http://10.0.0.1:80");
    cr_assert_str_eq(json_string_value(json_object_get(d, "error")),
                     "5 consecutive failures");
    json_decref(o);
    free(b);
    b = pc_webhook_body(PC_EV_CONFIG_RELOADED, NULL, NULL, "generation 2", id2,
                        &len);
    cr_assert_str_neq(id, id2);
    cr_assert(strstr(b, "\"detail\":\"generation 2\""));
    cr_assert(!strstr(b, "upstream"));
    free(b);
}

Test(webhook, event_names)
{
    cr_assert_eq(pc_event_by_name("config_reloaded"), PC_EV_CONFIG_RELOADED);
    cr_assert_eq(pc_event_by_name("config_reload_failed"),
                 PC_EV_CONFIG_RELOAD_FAILED);
    cr_assert_eq(pc_event_by_name("nope"), PC_EV_N);
}
