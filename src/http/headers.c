/* headers.c: the header list and the header rules of CONTRACT §3 (what is
 * hop-by-hop, what is added on the way up). Pure: no sockets, no events. */
#include "portcullis/headers.h"

#include <string.h>

#include "portcullis/util.h"

void pc_headers_add(pc_headers *h, pc_arena *a, const char *name, size_t nlen,
                    const char *value, size_t vlen)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 16;
        pc_header *v = pc_arena_alloc(a, cap * sizeof *v);
        if (h->n)
            memcpy(v, h->v, h->n * sizeof *v);
        h->v = v;
        h->cap = cap;
    }
    pc_header *x = &h->v[h->n++];
    x->name = pc_arena_strndup(a, name, nlen);
    x->nlen = (uint32_t)nlen;
    x->value = pc_arena_strndup(a, value, vlen);
    x->vlen = (uint32_t)vlen;
}

const pc_header *pc_headers_get(const pc_headers *h, const char *name)
{
    size_t len = strlen(name);
    for (uint32_t i = 0; i < h->n; i++)
        if (pc_strieq(h->v[i].name, h->v[i].nlen, name, len))
            return &h->v[i];
    return NULL;
}

unsigned pc_headers_count(const pc_headers *h, const char *name)
{
    size_t len = strlen(name);
    unsigned c = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (pc_strieq(h->v[i].name, h->v[i].nlen, name, len))
            c++;
    return c;
}

unsigned pc_headers_remove(pc_headers *h, const char *name)
{
    size_t len = strlen(name);
    uint32_t j = 0;
    unsigned removed = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        if (pc_strieq(h->v[i].name, h->v[i].nlen, name, len))
            removed++;
        else
            h->v[j++] = h->v[i];
    }
    h->n = j;
    return removed;
}

const char *pc_req_header(const pc_req *req, const char *name)
{
    const pc_header *x = pc_headers_get(&req->headers, name);
    return x ? x->value : NULL;
}

int pc_header_is_hop_by_hop(const char *name, size_t len)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "te", "trailer", "upgrade",
        "transfer-encoding", "proxy-connection", NULL};
    for (int i = 0; hop[i]; i++)
        if (pc_strieq(name, len, hop[i], strlen(hop[i])))
            return 1;
    return len >= 6 && pc_strieq(name, 6, "proxy-", 6);
}

/* Does the comma-separated token list `list` contain `tok`
 * (case-insensitive, optional whitespace)? */
int pc_header_list_has(const char *list, const char *tok, size_t toklen)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s && pc_strieq(s, (size_t)(e - s), tok, toklen))
            return 1;
    }
    return 0;
}

void pc_headers_strip_hop_by_hop(pc_headers *h)
{
    /* Headers named by Connection are hop-by-hop too (RFC 9110 §7.6.1). */
    for (uint32_t i = 0; i < h->n; i++) {
        if (!pc_strieq(h->v[i].name, h->v[i].nlen, "connection", 10))
            continue;
        for (uint32_t k = 0; k < h->n; k++)
            if (k != i && pc_header_list_has(h->v[i].value, h->v[k].name,
                                              h->v[k].nlen))
                h->v[k].nlen = 0; /* marked */
    }
    uint32_t j = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->v[i].nlen == 0 ||
            pc_header_is_hop_by_hop(h->v[i].name, h->v[i].nlen))
            continue;
        h->v[j++] = h->v[i];
    }
    h->n = j;
}

int pc_request_id_valid(const char *s, size_t len)
{
    if (len < 1 || len > 128)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == ':'))
            return 0;
    }
    return 1;
}

void pc_headers_apply_rules(pc_headers *h, pc_arena *a,
                            const pc_header_rules *r)
{
    for (size_t i = 0; i < r->nremove; i++)
        pc_headers_remove(h, r->remove[i]);
    for (size_t i = 0; i < r->nset; i++) {
        pc_headers_remove(h, r->set[i].name);
        pc_headers_add(h, a, r->set[i].name, strlen(r->set[i].name),
                       r->set[i].value, strlen(r->set[i].value));
    }
}
