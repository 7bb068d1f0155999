/* jsonschema.c: compiles a JSON Schema (draft 2020-12 subset, see
 * docs/json-schema.md) into the node tree of jsonschema_int.h, and frees it.
 * Owns every node, regex and message it builds; keeps references (never
 * copies) to the enum/const values. Must never accept a keyword it does not
 * enforce: an unknown keyword is an error with the schema pointer of where
 * it sits, so a schema never silently validates less than its author wrote.
 *
 * DESIGN
 *
 *   root ──properties/x──► node ──$ref──► $defs/tree ──items──► node ─┐
 *                                              ▲                      │
 *                                              └────────$ref──────────┘
 *
 * The root and each $defs entry are "resources": the only nodes a $ref may
 * point at. Their nodes are allocated before anything is compiled, so a
 * $ref resolves to a node pointer at once, forward or backward. After
 * compiling, the graph of in-place edges (allOf/anyOf/oneOf/not/$ref: the
 * ones that stay at the same instance location) is searched depth-first: a
 * cycle there would recurse forever without consuming the instance, and a
 * chain longer than PC_SCHEMA_MAX_DEPTH would be refused at run time, so
 * both are compile errors. Every other cycle goes through a keyword that
 * descends into the instance and is bounded by the instance's depth. */
#include "jsonschema_int.h"
#include "portcullis/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cctx {
    pc_schema *s;
    char *err, *where;
    size_t errlen, wherelen;
    int failed;
    char *path; /* JSON pointer of the place being compiled */
    size_t plen, pcap;
    pc_schema_node **def_nodes; /* resource i + 1 */
    char **def_names;
    size_t *def_lens;
    size_t ndefs;
} cctx;

typedef struct keyword keyword;
typedef int (*kw_fn)(cctx *c, pc_schema_node *n, const json_t *v,
                     const keyword *k);
struct keyword {
    const char *name;
    kw_fn fn;
    size_t off; /* field of pc_schema_node the handler fills, when generic */
};

/* Records the first compile error (message and where) and returns -1. */
static int vfail(cctx *c, const char *where, const char *fmt, va_list ap)
{
    if (c->failed)
        return -1;
    c->failed = 1;
    if (c->err && c->errlen)
        vsnprintf(c->err, c->errlen, fmt, ap);
    if (c->where && c->wherelen)
        snprintf(c->where, c->wherelen, "%s", where);
    return -1;
}

static int fail(cctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(cctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, c->path, fmt, ap);
    va_end(ap);
    return -1;
}

static void path_append(cctx *c, const char *s, size_t n)
{
    if (c->plen + n + 1 > c->pcap) {
        while (c->plen + n + 1 > c->pcap)
            c->pcap *= 2;
        c->path = pc_xrealloc(c->path, c->pcap);
    }
    memcpy(c->path + c->plen, s, n);
    c->plen += n;
    c->path[c->plen] = '\0';
}

/* Appends "/key" with RFC 6901 escaping; returns the length to restore. */
static size_t path_push(cctx *c, const char *key, size_t len)
{
    size_t saved = c->plen;
    path_append(c, "/", 1);
    for (size_t i = 0; i < len; i++) {
        if (key[i] == '~')
            path_append(c, "~0", 2);
        else if (key[i] == '/')
            path_append(c, "~1", 2);
        else
            path_append(c, key + i, 1);
    }
    return saved;
}

static size_t path_push_index(cctx *c, size_t i)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%zu", i);
    return path_push(c, buf, (size_t)n);
}

static void path_pop(cctx *c, size_t saved)
{
    c->plen = saved;
    c->path[saved] = '\0';
}

static pc_schema_node *new_node(cctx *c)
{
    pc_schema *s = c->s;
    pc_schema_node *n = pc_xcalloc(1, sizeof(*n));
    n->boolean = 1;
    n->resource = -1;
    n->min_len = n->max_len = n->min_items = n->max_items = -1;
    if (s->nnodes == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->nodes = pc_xrealloc(s->nodes, s->cap * sizeof(*s->nodes));
    }
    s->nodes[s->nnodes++] = n;
    return n;
}

static int compile_into(cctx *c, pc_schema_node *n, const json_t *v);

/* A subschema at the current path (the keyword's own place). */
static pc_schema_node *compile_here(cctx *c, const json_t *v)
{
    pc_schema_node *n = new_node(c);
    return compile_into(c, n, v) ? NULL : n;
}

static pc_schema_node *compile_at_index(cctx *c, const json_t *v, size_t i)
{
    size_t saved = path_push_index(c, i);
    pc_schema_node *n = compile_here(c, v);
    path_pop(c, saved);
    return n;
}

#define FIELD(n, k, type) ((type *)(void *)((char *)(n) + (k)->off))

static int kw_schema(cctx *c, pc_schema_node *n, const json_t *v,
                     const keyword *k)
{
    pc_schema_node *sub = compile_here(c, v);
    *FIELD(n, k, pc_schema_node *) = sub;
    return sub ? 0 : -1;
}

static int kw_items(cctx *c, pc_schema_node *n, const json_t *v,
                    const keyword *k)
{
    if (json_is_array(v))
        return fail(c, "'items' must be a schema; for a list of schemas "
                       "use 'prefixItems' (draft 2020-12)");
    return kw_schema(c, n, v, k);
}

static int kw_list(cctx *c, pc_schema_node *n, const json_t *v,
                   const keyword *k)
{
    pc_schema_list *l = FIELD(n, k, pc_schema_list);
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(c, "'%s' must be a non-empty array of schemas", k->name);
    l->n = json_array_size(v);
    l->v = pc_xcalloc(l->n, sizeof(*l->v));
    for (size_t i = 0; i < l->n; i++) {
        l->v[i] = compile_at_index(c, json_array_get(v, i), i);
        if (!l->v[i])
            return -1;
    }
    return 0;
}

static int prop_cmp(const void *x, const void *y)
{
    const pc_schema_prop *a = x, *b = y;
    int r = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);
    return r ? r : (a->len > b->len) - (a->len < b->len);
}

static int kw_properties(cctx *c, pc_schema_node *n, const json_t *v,
                         const keyword *k)
{
    (void)k;
    const char *key;
    size_t klen;
    json_t *sub;
    if (!json_is_object(v))
        return fail(c, "'properties' must be an object of schemas");
    n->props = pc_xcalloc(json_object_size(v), sizeof(*n->props));
    json_object_keylen_foreach((json_t *)v, key, klen, sub)
    {
        pc_schema_prop *p = &n->props[n->nprops++];
        p->name = pc_xstrndup(key, klen);
        p->len = klen;
        size_t saved = path_push(c, key, klen);
        p->schema = compile_here(c, sub);
        path_pop(c, saved);
        if (!p->schema)
            return -1;
    }
    qsort(n->props, n->nprops, sizeof(*n->props), prop_cmp);
    return 0;
}

static int kw_required(cctx *c, pc_schema_node *n, const json_t *v,
                       const keyword *k)
{
    (void)k;
    if (!json_is_array(v))
        return fail(c, "'required' must be an array of strings");
    n->required = pc_xcalloc(json_array_size(v), sizeof(*n->required));
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        size_t saved = path_push_index(c, i);
        if (!json_is_string(e))
            return fail(c, "'required' must be an array of strings");
        const char *s = json_string_value(e);
        size_t len = json_string_length(e);
        for (size_t j = 0; j < n->nrequired; j++)
            if (n->required[j].len == len &&
                memcmp(n->required[j].name, s, len) == 0)
                return fail(c, "'required' lists '%s' twice", s);
        path_pop(c, saved);
        n->required[n->nrequired].name = pc_xstrndup(s, len);
        n->required[n->nrequired++].len = len;
    }
    return 0;
}

static int kw_count(cctx *c, pc_schema_node *n, const json_t *v,
                    const keyword *k)
{
    /* 2020-12 counts are non-negative integers, and 2.0 is an integer. */
    long long out = -1;
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        out = json_integer_value(v);
    else if (json_is_real(v) && pc_schema_is_integral(v) &&
             json_real_value(v) >= 0 &&
             json_real_value(v) < 9223372036854775808.0)
        out = (long long)json_real_value(v);
    if (out < 0)
        return fail(c, "'%s' must be a non-negative integer", k->name);
    *FIELD(n, k, long long) = out;
    return 0;
}

static int kw_number(cctx *c, pc_schema_node *n, const json_t *v,
                     const keyword *k)
{
    if (pc_schema_num_get(v, FIELD(n, k, pc_schema_num)))
        return fail(c, "'%s' must be a number", k->name);
    return 0;
}

static int kw_multiple_of(cctx *c, pc_schema_node *n, const json_t *v,
                          const keyword *k)
{
    (void)k;
    pc_schema_num *m = &n->multiple;
    if (pc_schema_num_get(v, m) || (m->is_int ? m->i <= 0 : !(m->d > 0)))
        return fail(c, "'multipleOf' must be a number greater than 0");
    return 0;
}

static int kw_unique(cctx *c, pc_schema_node *n, const json_t *v,
                     const keyword *k)
{
    (void)k;
    if (!json_is_boolean(v))
        return fail(c, "'uniqueItems' must be a boolean");
    n->unique = json_is_true(v);
    return 0;
}

static int kw_pattern(cctx *c, pc_schema_node *n, const json_t *v,
                      const keyword *k)
{
    (void)k;
    char why[256];
    if (!json_is_string(v))
        return fail(c, "'pattern' must be a string");
    n->re = pc_xmalloc(sizeof(*n->re));
    if (pc_schema_pattern_compile(json_string_value(v), json_string_length(v),
                                  n->re, why, sizeof(why))) {
        free(n->re);
        n->re = NULL;
        return fail(c, "%s", why);
    }
    n->pattern = pc_xstrdup(json_string_value(v));
    return 0;
}

static unsigned type_bit(const char *s)
{
    static const struct {
        const char *name;
        unsigned bit;
    } types[] = {
        {"null", PC_SCHEMA_T_NULL},       {"boolean", PC_SCHEMA_T_BOOLEAN},
        {"object", PC_SCHEMA_T_OBJECT},   {"array", PC_SCHEMA_T_ARRAY},
        {"number", PC_SCHEMA_T_NUMBER},   {"string", PC_SCHEMA_T_STRING},
        {"integer", PC_SCHEMA_T_INTEGER},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(s, types[i].name) == 0)
            return types[i].bit;
    return 0;
}

/* "string", "string or null", "string, number or null". */
static char *join_types(const json_t *names)
{
    size_t n = json_array_size(names), len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(json_string_value(json_array_get(names, i))) + 4;
    char *out = pc_xmalloc(len);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, i + 1 == n ? " or " : ", ");
        strcat(out, json_string_value(json_array_get(names, i)));
    }
    return out;
}

static int kw_type(cctx *c, pc_schema_node *n, const json_t *v,
                   const keyword *k)
{
    (void)k;
    json_t *names = json_is_array(v) ? json_incref((json_t *)v) : json_array();
    if (json_is_string(v))
        json_array_append(names, (json_t *)v);
    int rc = 0;
    if (json_array_size(names) == 0)
        rc = fail(c, "'type' must be a type name or a non-empty array of them");
    for (size_t i = 0; i < json_array_size(names) && !rc; i++) {
        const json_t *e = json_array_get(names, i);
        size_t saved = json_is_array(v) ? path_push_index(c, i) : c->plen;
        unsigned bit = json_is_string(e) ? type_bit(json_string_value(e)) : 0;
        if (!json_is_string(e))
            rc = fail(c, "'type' must be a type name or an array of them");
        else if (!bit)
            rc = fail(c, "unknown type '%s'", json_string_value(e));
        else if (n->types & bit)
            rc = fail(c, "'type' lists '%s' twice", json_string_value(e));
        n->types |= bit;
        path_pop(c, saved);
    }
    if (!rc)
        n->types_text = join_types(names);
    json_decref(names);
    return rc;
}

/* "must be one of [1,2]" when the value prints short, else `fallback`. */
static char *value_msg(const char *prefix, const json_t *v,
                       const char *fallback)
{
    char *dump =
        json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    char *out;
    if (dump && strlen(dump) <= 80) {
        size_t len = strlen(prefix) + strlen(dump) + 2;
        out = pc_xmalloc(len);
        snprintf(out, len, "%s %s", prefix, dump);
    } else {
        out = pc_xstrdup(fallback);
    }
    free(dump);
    return out;
}

static int kw_enum(cctx *c, pc_schema_node *n, const json_t *v,
                   const keyword *k)
{
    (void)k;
    if (!json_is_array(v))
        return fail(c, "'enum' must be an array");
    n->enum_vals = json_incref((json_t *)v);
    n->enum_msg = value_msg("must be one of", v,
                            "must be one of the values listed in 'enum'");
    return 0;
}

static int kw_const(cctx *c, pc_schema_node *n, const json_t *v,
                    const keyword *k)
{
    (void)c;
    (void)k;
    n->const_val = json_incref((json_t *)v);
    n->const_msg =
        value_msg("must be equal to", v, "must be equal to the 'const' value");
    return 0;
}

/* Percent-decodes a URI fragment; -1 on a malformed escape. */
static int pct_decode(const char *s, char *out, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        unsigned v = 0;
        for (int j = 1; j <= 2; j++) {
            char h = s[i + j];
            int d = (h >= '0' && h <= '9')   ? h - '0'
                    : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                    : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                             : -1;
            if (d < 0)
                return -1;
            v = v * 16 + (unsigned)d;
        }
        out[o++] = (char)v;
        i += 2;
    }
    *outlen = o;
    return 0;
}

/* The resource a "#..." reference names, or NULL after an error. */
static pc_schema_node *resolve_ref(cctx *c, const char *ref)
{
    static const char defs[] = "/$defs/";
    size_t len;
    if (ref[0] != '#')
        return fail(c, "'$ref' must point into #/$defs (only local "
                       "references are supported)"),
               NULL;
    char *frag = pc_xmalloc(strlen(ref) + 1);
    pc_schema_node *target = NULL;
    if (pct_decode(ref + 1, frag, &len)) {
        fail(c, "'$ref' has a malformed %%-escape");
    } else if (len == 0) {
        target = c->s->root;
    } else if (len <= sizeof(defs) - 1 ||
               memcmp(frag, defs, sizeof(defs) - 1) != 0 ||
               memchr(frag + sizeof(defs) - 1, '/', len - sizeof(defs) + 1)) {
        fail(c, "'$ref' must point into #/$defs");
    } else {
        /* One reference token: ~1 is '/', ~0 is '~' (RFC 6901 §4). */
        char *name = frag + sizeof(defs) - 1;
        size_t o = 0, nlen = len - (sizeof(defs) - 1);
        for (size_t i = 0; i < nlen; i++) {
            if (name[i] == '~' && i + 1 < nlen &&
                (name[i + 1] == '0' || name[i + 1] == '1')) {
                name[o++] = name[++i] == '0' ? '~' : '/';
            } else if (name[i] == '~') {
                fail(c, "'$ref' has a malformed ~-escape");
                break;
            } else {
                name[o++] = name[i];
            }
        }
        for (size_t i = 0; i < c->ndefs && !c->failed && !target; i++)
            if (c->def_lens[i] == o && memcmp(c->def_names[i], name, o) == 0)
                target = c->def_nodes[i];
        if (!target)
            fail(c, "'$ref' target '%s' is not defined in $defs", ref);
    }
    free(frag);
    return target;
}

static int kw_ref(cctx *c, pc_schema_node *n, const json_t *v, const keyword *k)
{
    (void)k;
    if (!json_is_string(v))
        return fail(c, "'$ref' must be a string");
    n->ref = resolve_ref(c, json_string_value(v));
    if (!n->ref)
        return -1;
    n->ref_where = pc_xstrdup(c->path);
    return 0;
}

static int kw_defs(cctx *c, pc_schema_node *n, const json_t *v,
                   const keyword *k)
{
    (void)v;
    (void)k;
    /* The root's $defs were compiled as resources already; anywhere else a
     * definition could only be reached through a pointer we do not
     * support, so it would be dead text. */
    if (n != c->s->root)
        return fail(c, "'$defs' is only supported at the root");
    return 0;
}

static int kw_annotation(cctx *c, pc_schema_node *n, const json_t *v,
                         const keyword *k)
{
    /* k->off holds the JSON type the annotation must have; JSON_NULL
     * stands for "any". */
    json_type want = (json_type)k->off;
    if (want == JSON_STRING && !json_is_string(v))
        return fail(c, "'%s' must be a string", k->name);
    if (want == JSON_TRUE && !json_is_boolean(v))
        return fail(c, "'%s' must be a boolean", k->name);
    if (want == JSON_ARRAY && !json_is_array(v))
        return fail(c, "'%s' must be an array", k->name);
    /* A nested $id would change what "#" means below it. */
    if (strcmp(k->name, "$id") == 0 && n != c->s->root)
        return fail(c, "'$id' is only supported at the root");
    return 0;
}

#define OFF(f) offsetof(pc_schema_node, f)

static const keyword keywords[] = {
    {"type", kw_type, 0},
    {"enum", kw_enum, 0},
    {"const", kw_const, 0},
    {"minimum", kw_number, OFF(minimum)},
    {"maximum", kw_number, OFF(maximum)},
    {"exclusiveMinimum", kw_number, OFF(xminimum)},
    {"exclusiveMaximum", kw_number, OFF(xmaximum)},
    {"multipleOf", kw_multiple_of, 0},
    {"minLength", kw_count, OFF(min_len)},
    {"maxLength", kw_count, OFF(max_len)},
    {"pattern", kw_pattern, 0},
    {"minItems", kw_count, OFF(min_items)},
    {"maxItems", kw_count, OFF(max_items)},
    {"prefixItems", kw_list, OFF(prefix)},
    {"items", kw_items, OFF(items)},
    {"uniqueItems", kw_unique, 0},
    {"required", kw_required, 0},
    {"properties", kw_properties, 0},
    {"additionalProperties", kw_schema, OFF(additional)},
    {"$ref", kw_ref, 0},
    {"allOf", kw_list, OFF(all_of)},
    {"anyOf", kw_list, OFF(any_of)},
    {"oneOf", kw_list, OFF(one_of)},
    {"not", kw_schema, OFF(not_)},
    {"$defs", kw_defs, 0},
    {"$schema", kw_annotation, JSON_STRING},
    {"$id", kw_annotation, JSON_STRING},
    {"$comment", kw_annotation, JSON_STRING},
    {"title", kw_annotation, JSON_STRING},
    {"description", kw_annotation, JSON_STRING},
    {"default", kw_annotation, JSON_NULL},
    {"examples", kw_annotation, JSON_ARRAY},
    {"deprecated", kw_annotation, JSON_TRUE},
    {"readOnly", kw_annotation, JSON_TRUE},
    {"writeOnly", kw_annotation, JSON_TRUE},
};

static int compile_into(cctx *c, pc_schema_node *n, const json_t *v)
{
    const char *key;
    size_t klen;
    json_t *val;
    if (json_is_boolean(v)) {
        n->boolean = json_is_true(v);
        return 0;
    }
    if (!json_is_object(v))
        return fail(c, "a schema must be an object or a boolean");
    n->boolean = -1;
    json_object_keylen_foreach((json_t *)v, key, klen, val)
    {
        const keyword *k = NULL;
        for (size_t i = 0; i < sizeof(keywords) / sizeof(*keywords); i++)
            if (strlen(keywords[i].name) == klen &&
                memcmp(keywords[i].name, key, klen) == 0)
                k = &keywords[i];
        size_t saved = path_push(c, key, klen);
        int rc =
            k ? k->fn(c, n, val, k) : fail(c, "unsupported keyword '%s'", key);
        path_pop(c, saved);
        if (rc)
            return -1;
    }
    return 0;
}

/* The in-place graph search of the DESIGN note. state: 0 unvisited, 1 on
 * the current path, 2 done with depth[] = longest in-place $ref chain. */
typedef struct graph {
    int *state;
    int *depth;
} graph;

static const char *resource_name(cctx *c, int r, char *buf, size_t len)
{
    if (r == 0)
        return "#";
    snprintf(buf, len, "#/$defs/%s", c->def_names[r - 1]);
    return buf;
}

static int fail_at(cctx *c, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(cctx *c, const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, where, fmt, ap);
    va_end(ap);
    return -1;
}

static int resource_depth(cctx *c, graph *g, const pc_schema_node *t, int *out);

static int inplace_depth(cctx *c, graph *g, const pc_schema_node *n, int *out)
{
    const pc_schema_list *lists[] = {&n->all_of, &n->any_of, &n->one_of};
    int best = 0, d;
    char name[128];
    if (n->ref) {
        if (g->state[n->ref->resource] == 1)
            return fail_at(
                c, n->ref_where,
                "'$ref' to '%s' loops back without descending "
                "into the instance",
                resource_name(c, n->ref->resource, name, sizeof(name)));
        if (resource_depth(c, g, n->ref, &d))
            return -1;
        if (d + 1 > PC_SCHEMA_MAX_DEPTH)
            return fail_at(c, n->ref_where,
                           "'$ref' chain longer than %d without descending "
                           "into the instance",
                           PC_SCHEMA_MAX_DEPTH);
        best = d + 1;
    }
    for (size_t l = 0; l < 3; l++)
        for (size_t i = 0; i < lists[l]->n; i++) {
            if (inplace_depth(c, g, lists[l]->v[i], &d))
                return -1;
            best = d > best ? d : best;
        }
    if (n->not_) {
        if (inplace_depth(c, g, n->not_, &d))
            return -1;
        best = d > best ? d : best;
    }
    *out = best;
    return 0;
}

static int resource_depth(cctx *c, graph *g, const pc_schema_node *t, int *out)
{
    int r = t->resource;
    if (g->state[r] == 0) {
        g->state[r] = 1;
        if (inplace_depth(c, g, t, &g->depth[r]))
            return -1;
        g->state[r] = 2;
    }
    *out = g->depth[r];
    return 0;
}

static int check_refs(cctx *c)
{
    size_t n = c->ndefs + 1;
    graph g = {pc_xcalloc(n, sizeof(int)), pc_xcalloc(n, sizeof(int))};
    int rc = 0, d;
    for (size_t r = 0; r < n && !rc; r++)
        rc = resource_depth(c, &g, r ? c->def_nodes[r - 1] : c->s->root, &d);
    free(g.state);
    free(g.depth);
    return rc;
}

/* Creates the $defs resources (empty nodes) so that $ref can resolve to
 * them before they are compiled. */
static int declare_defs(cctx *c, const json_t *schema)
{
    const json_t *defs =
        json_is_object(schema) ? json_object_get(schema, "$defs") : NULL;
    const char *key;
    size_t klen;
    json_t *val;
    if (!defs)
        return 0;
    if (!json_is_object(defs)) {
        path_push(c, "$defs", 5);
        return fail(c, "'$defs' must be an object of schemas");
    }
    size_t n = json_object_size(defs);
    c->def_nodes = pc_xcalloc(n, sizeof(*c->def_nodes));
    c->def_names = pc_xcalloc(n, sizeof(*c->def_names));
    c->def_lens = pc_xcalloc(n, sizeof(*c->def_lens));
    json_object_keylen_foreach((json_t *)defs, key, klen, val)
    {
        c->def_names[c->ndefs] = pc_xstrndup(key, klen);
        c->def_lens[c->ndefs] = klen;
        c->def_nodes[c->ndefs] = new_node(c);
        c->def_nodes[c->ndefs]->resource = (int)c->ndefs + 1;
        c->ndefs++;
    }
    return 0;
}

static int compile_defs(cctx *c, const json_t *schema)
{
    const json_t *defs = json_object_get(schema, "$defs");
    for (size_t i = 0; i < c->ndefs; i++) {
        size_t saved = path_push(c, "$defs", 5);
        path_push(c, c->def_names[i], c->def_lens[i]);
        int rc = compile_into(
            c, c->def_nodes[i],
            json_object_getn(defs, c->def_names[i], c->def_lens[i]));
        path_pop(c, saved);
        if (rc)
            return -1;
    }
    return 0;
}

pc_schema *pc_schema_compile(const json_t *schema, char *err, size_t errlen,
                             char *where, size_t wherelen)
{
    cctx c = {
        .err = err, .errlen = errlen, .where = where, .wherelen = wherelen};
    if (err && errlen)
        err[0] = '\0';
    if (where && wherelen)
        where[0] = '\0';
    c.s = pc_xcalloc(1, sizeof(*c.s));
    c.pcap = 64;
    c.path = pc_xmalloc(c.pcap);
    c.path[0] = '\0';
    c.s->root = new_node(&c);
    c.s->root->resource = 0;
    if (!schema)
        fail(&c, "a schema must be an object or a boolean");
    else if (declare_defs(&c, schema) == 0 &&
             compile_into(&c, c.s->root, schema) == 0 &&
             compile_defs(&c, schema) == 0)
        check_refs(&c);
    for (size_t i = 0; i < c.ndefs; i++)
        free(c.def_names[i]);
    free(c.def_names);
    free(c.def_lens);
    free(c.def_nodes);
    free(c.path);
    if (c.failed) {
        pc_schema_free(c.s);
        return NULL;
    }
    return c.s;
}

static void free_node(pc_schema_node *n)
{
    free(n->types_text);
    json_decref(n->enum_vals);
    free(n->enum_msg);
    json_decref(n->const_val);
    free(n->const_msg);
    if (n->re) {
        regfree(n->re);
        free(n->re);
    }
    free(n->pattern);
    for (size_t i = 0; i < n->nprops; i++)
        free(n->props[i].name);
    free(n->props);
    for (size_t i = 0; i < n->nrequired; i++)
        free(n->required[i].name);
    free(n->required);
    free(n->prefix.v);
    free(n->all_of.v);
    free(n->any_of.v);
    free(n->one_of.v);
    free(n->ref_where);
    free(n);
}

void pc_schema_free(pc_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nnodes; i++)
        free_node(s->nodes[i]);
    free(s->nodes);
    free(s);
}
