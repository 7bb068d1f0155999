/* jsonschema_validate.c: checks a JSON instance against a compiled schema
 * and names the first failure (pointer + message). Reads the schema, never
 * writes it (one pc_schema serves every worker at once); owns only the
 * per-call context on the stack and its memo table.
 *
 * DESIGN
 *
 * Order. At one instance location the keywords run in this fixed order,
 * and the first failure is the answer:
 *   type, enum, const,
 *   minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf,
 *   minLength, maxLength, pattern,
 *   minItems, maxItems, prefixItems/items (by index), uniqueItems,
 *   required, properties/additionalProperties (in the instance's key order),
 *   $ref, allOf, anyOf, oneOf, not.
 * Cheap checks come before the ones that descend, maxLength before pattern
 * (so a long string is refused before the regex runs) and items before
 * uniqueItems (which allocates).
 *
 * Quiet mode. anyOf, oneOf and not try subschemas whose failures are not
 * the answer; while quiet > 0 a failure only returns -1 and renders nothing.
 *
 * Cost. Without $ref a schema is a tree, so each node meets each instance
 * value at most once. $ref makes it a graph in which the same (node, value)
 * pair can be reached along many paths ("allOf": [{"$ref": "#/$defs/t"},
 * {"$ref": "#/$defs/t"}] nested doubles per level); results at $ref targets
 * are therefore memoised per (target, value) in a hash table, which bounds
 * the work to (instance values x schema nodes). A memoised failure met
 * outside quiet mode is evaluated again to produce its message, along one
 * path only.
 *
 * Stack. Subschemas nested in place (allOf in allOf, $ref chains) multiply
 * with the instance's depth; evaluation deeper than MAX_NEST nested
 * subschemas stops the whole validation (`aborted`): the instance is
 * invalid whatever quiet mode or `not` would have made of that branch, and
 * the memo, which may hold context-dependent results by then, is moot. */
#include "jsonschema_int.h"
#include "portcullis/util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nested subschema evaluations: a recursive tree schema at the deepest
 * allowed instance uses a few hundred; the C stack of a worker thread holds
 * many times this. */
#define MAX_NEST 1024

typedef struct seg {
    const char *key; /* NULL for an array index */
    size_t len;
    size_t index;
} seg;

typedef struct memo_ent {
    const pc_schema_node *node;
    const json_t *value;
    int valid;
} memo_ent;

typedef struct vctx {
    char *ptr, *msg;
    size_t ptrlen, msglen;
    int quiet;
    int nest;    /* validate() calls in progress */
    int aborted; /* MAX_NEST reached: the answer is fixed */
    int depth;
    seg path[PC_SCHEMA_MAX_DEPTH + 1];
    memo_ent *memo; /* open addressing; node == NULL is empty */
    size_t memo_cap, memo_used;
} vctx;

/* Writes the RFC 6901 pointer of the current location into c->ptr. */
static void render_ptr(vctx *c)
{
    size_t o = 0;
    char num[32];
    if (!c->ptr || !c->ptrlen)
        return;
    for (int d = 0; d < c->depth; d++) {
        const seg *s = &c->path[d];
        const char *k = s->key;
        size_t len = s->len;
        if (!k) {
            len = (size_t)snprintf(num, sizeof(num), "%zu", s->index);
            k = num;
        }
        if (o + 1 < c->ptrlen)
            c->ptr[o++] = '/';
        for (size_t i = 0; i < len; i++) {
            const char *out = k[i] == '~' ? "~0" : k[i] == '/' ? "~1" : NULL;
            size_t n = out ? 2 : 1;
            if (o + n >= c->ptrlen)
                break;
            memcpy(c->ptr + o, out ? out : k + i, n);
            o += n;
        }
    }
    c->ptr[o] = '\0';
}

static int fail(vctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(vctx *c, const char *fmt, ...)
{
    if (c->quiet || c->aborted)
        return -1;
    render_ptr(c);
    if (c->msg && c->msglen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, c->msglen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int push(vctx *c, const char *key, size_t len, size_t index)
{
    /* The depth pre-check keeps real instances below this; the guard
     * keeps path[] in bounds whatever happens. */
    if (c->depth >= PC_SCHEMA_MAX_DEPTH)
        return fail(c, "nested deeper than %d levels", PC_SCHEMA_MAX_DEPTH);
    c->path[c->depth].key = key;
    c->path[c->depth].len = len;
    c->path[c->depth].index = index;
    c->depth++;
    return 0;
}

static size_t memo_slot(const vctx *c, const pc_schema_node *n, const json_t *v)
{
    uint64_t h = (uint64_t)(uintptr_t)n * 0x9E3779B97F4A7C15ull ^
                 (uint64_t)(uintptr_t)v * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    size_t i = (size_t)h & (c->memo_cap - 1);
    while (c->memo[i].node && (c->memo[i].node != n || c->memo[i].value != v))
        i = (i + 1) & (c->memo_cap - 1);
    return i;
}

/* 1 valid, 0 invalid, -1 unknown. */
static int memo_get(const vctx *c, const pc_schema_node *n, const json_t *v)
{
    if (!c->memo)
        return -1;
    const memo_ent *e = &c->memo[memo_slot(c, n, v)];
    return e->node ? e->valid : -1;
}

static void memo_put(vctx *c, const pc_schema_node *n, const json_t *v,
                     int valid)
{
    if (c->memo_used * 2 >= c->memo_cap) {
        memo_ent *old = c->memo;
        size_t oldcap = c->memo_cap;
        c->memo_cap = oldcap ? oldcap * 2 : 64;
        c->memo = pc_xcalloc(c->memo_cap, sizeof(*c->memo));
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].node)
                c->memo[memo_slot(c, old[i].node, old[i].value)] = old[i];
        free(old);
    }
    memo_ent *e = &c->memo[memo_slot(c, n, v)];
    if (!e->node)
        c->memo_used++;
    e->node = n;
    e->value = v;
    e->valid = valid;
}

static int validate(vctx *c, const pc_schema_node *n, const json_t *v,
                    int hops);
static int validate_node(vctx *c, const pc_schema_node *n, const json_t *v,
                         int hops);

/* A subschema at a child location (one level deeper in the instance). */
static int descend(vctx *c, const pc_schema_node *n, const json_t *v,
                   const char *key, size_t len, size_t index)
{
    if (push(c, key, len, index))
        return -1;
    int rc = validate(c, n, v, 0);
    c->depth--;
    return rc;
}

/* A `false` subschema reached through a keyword that names the culprit
 * better than the generic message would. */
static int refused(vctx *c, const char *key, size_t len, size_t index,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int refused(vctx *c, const char *key, size_t len, size_t index,
                   const char *fmt, ...)
{
    if (c->quiet || push(c, key, len, index))
        return -1;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fail(c, "%s", buf);
    c->depth--;
    return -1;
}

static int check_type(vctx *c, const pc_schema_node *n, const json_t *v)
{
    unsigned have;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        have = PC_SCHEMA_T_OBJECT;
        break;
    case JSON_ARRAY:
        have = PC_SCHEMA_T_ARRAY;
        break;
    case JSON_STRING:
        have = PC_SCHEMA_T_STRING;
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        have = PC_SCHEMA_T_NUMBER |
               (pc_schema_is_integral(v) ? PC_SCHEMA_T_INTEGER : 0);
        break;
    case JSON_NULL:
        have = PC_SCHEMA_T_NULL;
        break;
    default:
        have = PC_SCHEMA_T_BOOLEAN;
    }
    if (n->types && !(n->types & have))
        return fail(c, "expected %s, got %s", n->types_text,
                    pc_schema_type_name(v));
    return 0;
}

static int check_values(vctx *c, const pc_schema_node *n, const json_t *v)
{
    if (n->enum_vals) {
        size_t i, count = json_array_size(n->enum_vals);
        for (i = 0; i < count; i++)
            if (pc_schema_json_equal(v, json_array_get(n->enum_vals, i)))
                break;
        if (i == count)
            return fail(c, "%s", n->enum_msg);
    }
    if (n->const_val && !pc_schema_json_equal(v, n->const_val))
        return fail(c, "%s", n->const_msg);
    return 0;
}

static int check_number(vctx *c, const pc_schema_node *n, const json_t *v)
{
    pc_schema_num x;
    if (pc_schema_num_get(v, &x))
        return 0;
    if (n->minimum.set && pc_schema_num_cmp(&x, &n->minimum) < 0)
        return fail(c, "must be >= %s", n->minimum.text);
    if (n->maximum.set && pc_schema_num_cmp(&x, &n->maximum) > 0)
        return fail(c, "must be <= %s", n->maximum.text);
    if (n->xminimum.set && pc_schema_num_cmp(&x, &n->xminimum) <= 0)
        return fail(c, "must be > %s", n->xminimum.text);
    if (n->xmaximum.set && pc_schema_num_cmp(&x, &n->xmaximum) >= 0)
        return fail(c, "must be < %s", n->xmaximum.text);
    if (n->multiple.set && !pc_schema_num_multiple(&x, &n->multiple))
        return fail(c, "must be a multiple of %s", n->multiple.text);
    return 0;
}

static int check_string(vctx *c, const pc_schema_node *n, const json_t *v)
{
    const char *s = json_string_value(v);
    size_t bytes = json_string_length(v);
    if (n->min_len >= 0 || n->max_len >= 0) {
        long long chars = (long long)pc_schema_utf8_len(s, bytes);
        if (n->min_len >= 0 && chars < n->min_len)
            return fail(c, "must be at least %lld character%s long", n->min_len,
                        n->min_len == 1 ? "" : "s");
        if (n->max_len >= 0 && chars > n->max_len)
            return fail(c, "must be at most %lld character%s long", n->max_len,
                        n->max_len == 1 ? "" : "s");
    }
    if (n->re) {
        /* REG_STARTEND: the length comes from jansson, so a string holding
         * \u0000 is matched whole rather than up to its first NUL. */
        regmatch_t range = {.rm_so = 0, .rm_eo = (regoff_t)bytes};
        if (regexec(n->re, s, 1, &range, REG_STARTEND) != 0)
            return fail(c, "does not match pattern '%s'", n->pattern);
    }
    return 0;
}

static int check_array(vctx *c, const pc_schema_node *n, const json_t *v)
{
    long long size = (long long)json_array_size(v);
    if (n->min_items >= 0 && size < n->min_items)
        return fail(c, "must have at least %lld item%s", n->min_items,
                    n->min_items == 1 ? "" : "s");
    if (n->max_items >= 0 && size > n->max_items)
        return fail(c, "must have at most %lld item%s", n->max_items,
                    n->max_items == 1 ? "" : "s");
    for (size_t i = 0; i < (size_t)size; i++) {
        const pc_schema_node *sub = i < n->prefix.n ? n->prefix.v[i] : n->items;
        if (!sub)
            break; /* no items keyword: the rest is unconstrained */
        if (sub->boolean == 0)
            return refused(c, NULL, 0, i,
                           "item %zu not allowed (at most %zu "
                           "item%s)",
                           i, n->prefix.n, n->prefix.n == 1 ? "" : "s");
        if (descend(c, sub, json_array_get(v, i), NULL, 0, i))
            return -1;
    }
    if (n->unique) {
        size_t first = 0;
        long dup = pc_schema_first_duplicate(v, &first);
        if (dup >= 0)
            return refused(c, NULL, 0, (size_t)dup, "duplicate of item %zu",
                           first);
    }
    return 0;
}

static const pc_schema_node *find_prop(const pc_schema_node *n, const char *key,
                                       size_t len)
{
    size_t lo = 0, hi = n->nprops;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const pc_schema_prop *p = &n->props[mid];
        int r = memcmp(key, p->name, len < p->len ? len : p->len);
        if (!r)
            r = (len > p->len) - (len < p->len);
        if (!r)
            return p->schema;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int check_object(vctx *c, const pc_schema_node *n, const json_t *v)
{
    const char *key;
    size_t klen;
    json_t *val;
    for (size_t i = 0; i < n->nrequired; i++)
        if (!json_object_getn(v, n->required[i].name, n->required[i].len))
            return fail(c, "missing required property '%s'",
                        n->required[i].name);
    if (!n->nprops && !n->additional)
        return 0;
    json_object_keylen_foreach((json_t *)v, key, klen, val)
    {
        const pc_schema_node *sub = find_prop(n, key, klen);
        int own = sub != NULL;
        if (!sub)
            sub = n->additional;
        if (!sub)
            continue;
        if (sub->boolean == 0)
            return refused(c, key, klen, 0,
                           own ? "property '%s' not allowed"
                               : "additional property '%s' not allowed",
                           key);
        if (descend(c, sub, val, key, klen, 0))
            return -1;
    }
    return 0;
}

static int apply_ref(vctx *c, const pc_schema_node *t, const json_t *v,
                     int hops)
{
    /* Compile-time checks refuse longer in-place chains; this keeps the
     * stack bounded even if they had a hole. */
    if (hops >= PC_SCHEMA_MAX_DEPTH)
        return fail(c, "$ref chain deeper than %d", PC_SCHEMA_MAX_DEPTH);
    int known = memo_get(c, t, v);
    if (known == 1 || (known == 0 && c->quiet))
        return known ? 0 : -1;
    int rc = validate(c, t, v, hops + 1);
    memo_put(c, t, v, rc == 0);
    return rc;
}

static int quiet_validate(vctx *c, const pc_schema_node *n, const json_t *v,
                          int hops)
{
    c->quiet++;
    int rc = validate(c, n, v, hops);
    c->quiet--;
    return rc;
}

static int check_combinators(vctx *c, const pc_schema_node *n, const json_t *v,
                             int hops)
{
    if (n->ref && apply_ref(c, n->ref, v, hops))
        return -1;
    for (size_t i = 0; i < n->all_of.n; i++)
        if (validate(c, n->all_of.v[i], v, hops))
            return -1;
    if (n->any_of.n) {
        size_t i = 0;
        while (i < n->any_of.n && quiet_validate(c, n->any_of.v[i], v, hops))
            i++;
        if (i == n->any_of.n)
            return fail(c, "does not match any schema in anyOf");
    }
    if (n->one_of.n) {
        size_t match = SIZE_MAX;
        for (size_t i = 0; i < n->one_of.n; i++) {
            if (quiet_validate(c, n->one_of.v[i], v, hops))
                continue;
            if (match != SIZE_MAX)
                return fail(c,
                            "matches more than one schema in oneOf "
                            "(%zu and %zu)",
                            match, i);
            match = i;
        }
        if (match == SIZE_MAX)
            return fail(c, "does not match any schema in oneOf");
    }
    if (n->not_ && !quiet_validate(c, n->not_, v, hops))
        return fail(c, "must not match the schema in 'not'");
    return 0;
}

static int too_nested(vctx *c)
{
    int quiet = c->quiet;
    c->quiet = 0;
    fail(c, "schema nesting deeper than %d subschemas here", MAX_NEST);
    c->quiet = quiet;
    c->aborted = 1;
    return -1;
}

static int validate(vctx *c, const pc_schema_node *n, const json_t *v, int hops)
{
    if (c->aborted)
        return -1;
    if (c->nest >= MAX_NEST)
        return too_nested(c);
    c->nest++;
    int rc = validate_node(c, n, v, hops);
    c->nest--;
    return rc;
}

static int validate_node(vctx *c, const pc_schema_node *n, const json_t *v,
                         int hops)
{
    if (n->boolean >= 0)
        return n->boolean ? 0 : fail(c, "not allowed (schema is false)");
    if (check_type(c, n, v) || check_values(c, n, v))
        return -1;
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL:
        rc = check_number(c, n, v);
        break;
    case JSON_STRING:
        rc = check_string(c, n, v);
        break;
    case JSON_ARRAY:
        rc = check_array(c, n, v);
        break;
    case JSON_OBJECT:
        rc = check_object(c, n, v);
        break;
    default:
        break;
    }
    return rc ? rc : check_combinators(c, n, v, hops);
}

/* Refuses instances nested deeper than PC_SCHEMA_MAX_DEPTH containers,
 * whatever the schema, so every recursion over the instance (validation,
 * equality, uniqueItems) stays shallow. Recurses at most that deep. */
static int check_depth(vctx *c, const json_t *v, int level)
{
    const char *key;
    size_t klen;
    json_t *val;
    if (!json_is_array(v) && !json_is_object(v))
        return 0;
    if (level > PC_SCHEMA_MAX_DEPTH)
        return fail(c, "nested deeper than %d levels", PC_SCHEMA_MAX_DEPTH);
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            c->path[c->depth++] = (seg){NULL, 0, i};
            int rc = check_depth(c, json_array_get(v, i), level + 1);
            c->depth--;
            if (rc)
                return -1;
        }
        return 0;
    }
    json_object_keylen_foreach((json_t *)v, key, klen, val)
    {
        c->path[c->depth++] = (seg){key, klen, 0};
        int rc = check_depth(c, val, level + 1);
        c->depth--;
        if (rc)
            return -1;
    }
    return 0;
}

int pc_schema_validate(const pc_schema *s, const json_t *instance, char *ptr,
                       size_t ptrlen, char *msg, size_t msglen)
{
    vctx c = {.ptr = ptr, .ptrlen = ptrlen, .msg = msg, .msglen = msglen};
    if (ptr && ptrlen)
        ptr[0] = '\0';
    if (msg && msglen)
        msg[0] = '\0';
    int rc = check_depth(&c, instance, 1);
    if (!rc)
        rc = validate(&c, s->root, instance, 0);
    if (c.aborted)
        rc = -1;
    free(c.memo);
    return rc ? -1 : 0;
}
