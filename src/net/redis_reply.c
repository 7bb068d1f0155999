/* redis_reply.c: the Redis client's parts that touch no connection
 * (redis.h): its options, the SHA-1 of a script, and the readers of the
 * replies it acts on (CLUSTER SLOTS, the rate-limit script's pair), each
 * checking every type and every integer's range before using it. Never
 * does I/O; the replies are hiredis's parsed objects, borrowed. */
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/redis.h"

static int str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int pc_redis_opts_same(const pc_redis_opts *a, const pc_redis_opts *b)
{
    if (!a || !b)
        return !a && !b;
    return str_same(a->address, b->address) &&
           str_same(a->password, b->password) && a->db == b->db &&
           a->timeout_ms == b->timeout_ms;
}

void pc_redis_opts_free(pc_redis_opts *o)
{
    if (!o)
        return;
    free(o->address);
    free(o->password);
    free(o);
}

void pc_redis_script_init(pc_redis_script *s, const char *text)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char hex[] = "0123456789abcdef";
    s->text = text;
    if (EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL) != 1 ||
        n != 20) {
        /* EVALSHA then always gets NOSCRIPT and EVAL follows: slower,
         * still right */
        memset(s->sha, '0', 40);
    } else {
        for (unsigned i = 0; i < 20; i++) {
            s->sha[2 * i] = hex[md[i] >> 4];
            s->sha[2 * i + 1] = hex[md[i] & 15];
        }
    }
    s->sha[40] = '\0';
}

int pc_redis_slots_parse(const redisReply *rep,
                         void (*range)(void *arg, unsigned from, unsigned to,
                                       const char *host, uint16_t port),
                         void *arg, const char *fallback_host)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 3)
            return -1;
        const redisReply *a = e->element[0], *b = e->element[1],
                         *m = e->element[2];
        if (a->type != REDIS_REPLY_INTEGER || b->type != REDIS_REPLY_INTEGER ||
            a->integer < 0 || b->integer < a->integer ||
            b->integer >= PC_REDIS_SLOTS)
            return -1;
        if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
            m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER ||
            m->element[1]->integer < 1 || m->element[1]->integer > 65535 ||
            m->element[0]->len >= PC_REDIS_HOST_MAX ||
            memchr(m->element[0]->str, '\0', m->element[0]->len))
            return -1;
        const char *host =
            m->element[0]->len ? m->element[0]->str : fallback_host;
        if (!host || !*host || !strcmp(host, "?"))
            return -1;
        range(arg, (unsigned)a->integer, (unsigned)b->integer, host,
              (uint16_t)m->element[1]->integer);
    }
    return (int)rep->elements;
}

int pc_redis_reply_pair(const redisReply *rep, long long *a, long long *b)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    *a = rep->element[0]->integer;
    *b = rep->element[1]->integer;
    return 0;
}
