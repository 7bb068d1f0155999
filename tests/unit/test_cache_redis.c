/* test_cache_redis.c: the Redis form of a stored object (lib/cache_wire.c):
 * round trip of every field, and corrupt or hostile entries refused (a
 * miss), never trusted. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/cache_store.h"

static const char KEY[] = "example.com /a?b=1";

static pc_cobj *sample(void)
{
    const char *vn[] = {"accept-encoding"}, *vv[] = {"gzip"};
    pc_chdr h[] = {{"Content-Type", "text/plain", 12, 10},
                   {"ETag", "\"v1\"", 4, 4},
                   {"Cache-Control", "max-age=60, stale-if-error=5", 13, 28}};
    pc_cobj *o =
        pc_cache_obj_new(KEY, strlen(KEY), "r", "/a", vn, vv, 1, 203, h, 3);
    pc_cbody *b = pc_cache_body_new("he\0llo", 6);
    pc_cache_obj_set_body(o, b);
    pc_cache_body_unref(b);
    o->t = (pc_cache_times){1700000000, 1700000001, 1699999999, 7};
    o->lifetime = 60;
    o->swr = -1;
    o->sie = 5;
    o->must_revalidate = 1;
    return o;
}

static pc_cobj *decode(const char *v, size_t n)
{
    return pc_cache_obj_decode(v, n, KEY, strlen(KEY), "route", "/a");
}

Test(cache_wire, round_trip)
{
    pc_cobj *o = sample();
    size_t n;
    char *v = pc_cache_obj_encode(o, &n);
    pc_cobj *d = decode(v, n);
    cr_assert_not_null(d);
    cr_assert_eq(d->status, 203);
    cr_assert_eq(d->klen, strlen(KEY));
    cr_assert_str_eq(d->key, KEY);
    cr_assert_eq(d->hash, o->hash);
    cr_assert_str_eq(d->route, "route");
    cr_assert_str_eq(d->path, "/a");
    cr_assert_eq(d->nvary, 1);
    cr_assert_str_eq(d->vary_names[0], "accept-encoding");
    cr_assert_str_eq(d->vary_vals[0], "gzip");
    cr_assert_eq(d->nhdrs, 3);
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(d->hdrs[i].nlen, o->hdrs[i].nlen);
        cr_assert_eq(d->hdrs[i].vlen, o->hdrs[i].vlen);
        cr_assert_str_eq(d->hdrs[i].name, o->hdrs[i].name);
        cr_assert_str_eq(d->hdrs[i].value, o->hdrs[i].value);
    }
    cr_assert_str_eq(d->etag, "\"v1\"");
    cr_assert_eq(d->body->len, 6);
    cr_assert(memcmp(d->body->data, "he\0llo", 6) == 0);
    cr_assert_eq(d->t.request_time, 1700000000);
    cr_assert_eq(d->t.response_time, 1700000001);
    cr_assert_eq(d->t.date_value, 1699999999);
    cr_assert_eq(d->t.age_value, 7);
    cr_assert_eq(d->lifetime, 60);
    cr_assert_eq(d->swr, -1);
    cr_assert_eq(d->sie, 5);
    cr_assert(d->must_revalidate && !d->no_cache);
    /* the same Age on any instance: absolute times */
    cr_assert_eq(pc_cache_current_age(&d->t, 1700000011),
                 pc_cache_current_age(&o->t, 1700000011));
    /* an empty object: no Vary, no header, no body */
    pc_cobj *e = pc_cache_obj_new(KEY, strlen(KEY), "r", "/a", NULL, NULL, 0,
                                  200, NULL, 0);
    size_t en;
    char *ev = pc_cache_obj_encode(e, &en);
    pc_cobj *ed = decode(ev, en);
    cr_assert_not_null(ed);
    cr_assert_eq(ed->nhdrs, 0);
    cr_assert_eq(ed->body->len, 0);
    pc_cache_obj_unref(ed);
    pc_cache_obj_unref(e);
    free(ev);
    pc_cache_obj_unref(d);
    pc_cache_obj_unref(o);
    free(v);
}

/* Every truncation of a valid entry, every single-byte change that breaks
 * its grammar, another key, and hostile values are misses (NULL), and
 * none reads out of bounds (sanitizer build). */
Test(cache_wire, corrupt)
{
    pc_cobj *o = sample();
    size_t n;
    char *v = pc_cache_obj_encode(o, &n);
    for (size_t i = 0; i < n; i++) {
        char *t = malloc(i ? i : 1);
        memcpy(t, v, i);
        cr_assert_null(decode(t, i), "truncated at %zu", i);
        free(t);
    }
    char *longer = malloc(n + 1);
    memcpy(longer, v, n);
    longer[n] = 'x';
    cr_assert_null(decode(longer, n + 1), "trailing bytes");
    free(longer);
    for (size_t i = 0; i < n; i++) {
        char *t = malloc(n);
        memcpy(t, v, n);
        t[i] = '\x7f';
        pc_cobj *d = decode(t, n);
        /* a byte inside a header value or the body may change and still
         * parse: then the object is well formed, never out of bounds */
        pc_cache_obj_unref(d);
        free(t);
    }
    cr_assert_null(pc_cache_obj_decode(v, n, "other /", 7, "r", "/"));
    cr_assert_null(decode(NULL, 0));
    cr_assert_null(decode("", 0));
    free(v);
    pc_cache_obj_unref(o);

#define H "PCC1\n18\nexample.com /a?b=1"
    static const char *const bad[] = {
        /* status out of range */
        H "99\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n0\n0\n",
        H "600\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n0\n0\n",
        /* negative time, huge number, flags out of range */
        H "200\n-5\n0\n0\n0\n1\n-1\n-1\n0\n0\n0\n0\n",
        H "200\n0\n99999999999999999999\n0\n0\n1\n"
          "-1\n-1\n0\n0\n0\n0\n",
        H "200\n0\n0\n0\n0\n1\n-1\n-1\n4\n0\n0\n0\n",
        /* swr below -1, too many Vary pairs, too many header fields */
        H "200\n0\n0\n0\n0\n1\n-2\n-1\n0\n0\n0\n0\n",
        H "200\n0\n0\n0\n0\n1\n-1\n-1\n0\n9\n",
        H "200\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n129\n",
        /* a header value with CR LF (response splitting), a name that is not
         * a token, an empty name */
        H "200\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n1\n"
          "1\nX4\na\r\nb0\n",
        H "200\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n1\n"
          "2\nX:1\na0\n",
        H "200\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n1\n"
          "0\n1\na0\n",
        /* a body longer than the entry, a length with a sign */
        H "200\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n0\n9\nab",
        H "200\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n0\n-1\n",
        /* wrong magic */
        "PCC2\n18\nexample.com /a?b=1"
        "200\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n0\n0\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_null(decode(bad[i], strlen(bad[i])), "bad[%zu]", i);
    /* and the same grammar well formed is accepted */
    const char *good = H "200\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n1\n"
                         "1\nX1\na2\nok";
    const char *base = H "200\n0\n0\n0\n0\n1\n-1\n-1\n0\n0\n0\n0\n";
    pc_cobj *d = decode(base, strlen(base));
    cr_assert_not_null(d);
    pc_cache_obj_unref(d);
    d = decode(good, strlen(good));
    cr_assert_not_null(d);
    cr_assert_eq(d->body->len, 2);
    pc_cache_obj_unref(d);
}
