/* jsonschema_json.c: the JSON value arithmetic JSON Schema needs and jansson
 * does not give: exact number comparison across integer and real, equality
 * with 1 == 1.0, multipleOf with decimal steps, code-point length, and the
 * duplicate search of uniqueItems. Pure functions on borrowed jansson
 * values; must never modify a value or keep a pointer to it. */
#include "jsonschema_int.h"
#include "portcullis/util.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2^63 as a double: the first value a json_int_t cannot hold. */
#define TWO63 9223372036854775808.0

static void format_real(double d, char *buf, size_t len)
{
    /* The shortest of %.15g..%.17g that reads back as d, so that 0.01
     * prints as "0.01" and not "0.01000000000000000021". */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

int pc_schema_num_get(const json_t *v, pc_schema_num *out)
{
    if (json_is_integer(v)) {
        out->is_int = 1;
        out->i = json_integer_value(v);
        out->d = 0;
        snprintf(out->text, sizeof(out->text), "%" JSON_INTEGER_FORMAT, out->i);
    } else if (json_is_real(v)) {
        out->is_int = 0;
        out->i = 0;
        out->d = json_real_value(v);
        format_real(out->d, out->text, sizeof(out->text));
    } else {
        return -1;
    }
    out->set = 1;
    return 0;
}

/* Exact comparison of an integer with a double: converting i to double
 * would round above 2^53 and call 2^53 + 1 equal to 2^53. */
static int cmp_int_real(json_int_t i, double d)
{
    if (isnan(d))
        return 1;
    if (d >= TWO63)
        return -1;
    if (d < -TWO63)
        return 1;
    double t = trunc(d);
    json_int_t ti = (json_int_t)t;
    if (i != ti)
        return i < ti ? -1 : 1;
    double frac = d - t;
    return frac > 0 ? -1 : (frac < 0 ? 1 : 0);
}

int pc_schema_num_cmp(const pc_schema_num *a, const pc_schema_num *b)
{
    if (a->is_int && b->is_int)
        return (a->i > b->i) - (a->i < b->i);
    if (a->is_int)
        return cmp_int_real(a->i, b->d);
    if (b->is_int)
        return -cmp_int_real(b->i, a->d);
    return (a->d > b->d) - (a->d < b->d);
}

int pc_schema_num_multiple(const pc_schema_num *v, const pc_schema_num *m)
{
    if (v->is_int && m->is_int)
        return v->i % m->i == 0;
    double x = v->is_int ? (double)v->i : v->d;
    double y = m->is_int ? (double)m->i : m->d;
    double q = x / y;
    if (!isfinite(q))
        return 0;
    /* x and y each carry half an ulp of decimal rounding and the division
     * adds another: a true multiple lands within ~1.5 ulps of an integer
     * (0.07 / 0.01 = 7.000000000000001). Four ulps of slack keeps 0.015
     * against 0.01 (q = 1.5) far outside. */
    return fabs(q - nearbyint(q)) <= 4 * DBL_EPSILON * fabs(q);
}

int pc_schema_is_integral(const json_t *v)
{
    if (json_is_integer(v))
        return 1;
    if (!json_is_real(v))
        return 0;
    double d = json_real_value(v);
    return isfinite(d) && floor(d) == d;
}

const char *pc_schema_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

static int objects_equal(const json_t *a, const json_t *b)
{
    const char *key;
    size_t klen;
    json_t *va;
    if (json_object_size(a) != json_object_size(b))
        return 0;
    json_object_keylen_foreach((json_t *)a, key, klen, va)
    {
        json_t *vb = json_object_getn(b, key, klen);
        if (!vb || !pc_schema_json_equal(va, vb))
            return 0;
    }
    return 1;
}

int pc_schema_json_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        pc_schema_num x, y;
        pc_schema_num_get(a, &x);
        pc_schema_num_get(b, &y);
        return pc_schema_num_cmp(&x, &y) == 0;
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b),
                      json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!pc_schema_json_equal(json_array_get(a, i),
                                      json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_OBJECT:
        return objects_equal(a, b);
    default:
        return 1; /* true, false, null: same type is same value */
    }
}

size_t pc_schema_utf8_len(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    return count;
}

/* uniqueItems: every item is encoded once into a canonical byte string
 * (numbers by value, object members sorted by key, lengths explicit so the
 * encoding is injective), the encodings are sorted, and equal items end up
 * adjacent. Unlike pairwise comparison this stays O(n log n) for the
 * 100,000-item arrays a 1 MiB body can hold. */
typedef struct cbuf {
    unsigned char *p;
    size_t len, cap;
} cbuf;

typedef struct member {
    const char *key;
    size_t len;
    const json_t *value;
} member;

static void put(cbuf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = pc_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_tag_size(cbuf *b, char tag, uint64_t n)
{
    put(b, &tag, 1);
    put(b, &n, sizeof(n));
}

static int member_cmp(const void *x, const void *y)
{
    const member *a = x, *b = y;
    int c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    if (c)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

static void encode(cbuf *b, const json_t *v);

static void encode_number(cbuf *b, const json_t *v)
{
    /* One encoding per value: an integral real that fits json_int_t is
     * written as that integer, so 1 and 1.0 (and 0 and -0.0) collide. */
    json_int_t i;
    if (json_is_integer(v)) {
        i = json_integer_value(v);
    } else {
        double d = json_real_value(v);
        if (!(floor(d) == d && d >= -TWO63 && d < TWO63)) {
            put(b, "r", 1);
            put(b, &d, sizeof(d));
            return;
        }
        i = (json_int_t)d;
    }
    put(b, "i", 1);
    put(b, &i, sizeof(i));
}

static void encode_object(cbuf *b, const json_t *v)
{
    size_t n = json_object_size(v), k = 0;
    member *m = pc_xmalloc(n * sizeof(*m));
    const char *key;
    size_t klen;
    json_t *val;
    json_object_keylen_foreach((json_t *)v, key, klen, val)
    {
        m[k].key = key;
        m[k].len = klen;
        m[k].value = val;
        k++;
    }
    qsort(m, n, sizeof(*m), member_cmp);
    put_tag_size(b, '{', n);
    for (k = 0; k < n; k++) {
        put_tag_size(b, 's', m[k].len);
        put(b, m[k].key, m[k].len);
        encode(b, m[k].value);
    }
    free(m);
}

static void encode(cbuf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        encode_object(b, v);
        break;
    case JSON_ARRAY:
        put_tag_size(b, '[', json_array_size(v));
        for (size_t i = 0; i < json_array_size(v); i++)
            encode(b, json_array_get(v, i));
        break;
    case JSON_STRING:
        put_tag_size(b, 's', json_string_length(v));
        put(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        encode_number(b, v);
        break;
    case JSON_TRUE:
        put(b, "t", 1);
        break;
    case JSON_FALSE:
        put(b, "f", 1);
        break;
    case JSON_NULL:
        put(b, "n", 1);
        break;
    }
}

typedef struct span {
    size_t off, len, idx;
} span;

/* Orders by encoding, then by index, so that within a run of equal items
 * the two lowest indexes come first. */
static int span_cmp(const void *x, const void *y, void *base)
{
    const span *a = x, *b = y;
    const unsigned char *p = base;
    int c = memcmp(p + a->off, p + b->off, a->len < b->len ? a->len : b->len);
    if (c)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static int span_same(const unsigned char *base, const span *a, const span *b)
{
    return a->len == b->len &&
           memcmp(base + a->off, base + b->off, a->len) == 0;
}

long pc_schema_first_duplicate(const json_t *array, size_t *first)
{
    size_t n = json_array_size(array);
    if (n < 2)
        return -1;
    cbuf b = {0};
    span *s = pc_xmalloc(n * sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        s[i].off = b.len;
        encode(&b, json_array_get(array, i));
        s[i].len = b.len - s[i].off;
        s[i].idx = i;
    }
    qsort_r(s, n, sizeof(*s), span_cmp, b.p);
    long best = -1;
    for (size_t k = 1; k < n; k++) {
        /* Only the first pair of each run matters: it holds the run's
         * second-lowest index, the earliest duplicate of that value. */
        if (!span_same(b.p, &s[k - 1], &s[k]))
            continue;
        if (k >= 2 && span_same(b.p, &s[k - 2], &s[k - 1]))
            continue;
        if (best < 0 || (long)s[k].idx < best) {
            best = (long)s[k].idx;
            *first = s[k - 1].idx;
        }
    }
    free(s);
    free(b.p);
    return best;
}
