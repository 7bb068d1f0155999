/* bucket_table.h: the process-wide store of rate-limit buckets (CONTRACT
 * §2: "a local rate-limit bucket ... per process, shared by all workers"),
 * created once by main.c and shared by every worker (pc_loop.buckets).
 *
 * DESIGN: PC_BUCKET_TABLE_SHARDS shards, each a mutex, an open-addressing
 * index (linear probing, backward-shift deletion, load <= 3/4) and its
 * entries in fixed 64-entry chunks allocated on first use. A key is
 * (family, bytes): family is a 64-bit id of the rate-limit policy and the
 * route it applies to (made from the route's name and the policy's
 * values, so it is the same in every configuration generation: buckets
 * survive reloads), bytes the client's key (at most PC_BUCKET_KEY_MAX,
 * compared in full). The hash (SipHash-1-3 with a per-table random key,
 * so clients cannot aim keys at one shard or one probe run) is computed
 * once per decision; its top byte picks the shard, its low bits the
 * slot, 16 more bits are kept in the index as a tag so a probe rarely
 * touches an entry that is not the one looked for. A decision holds one
 * shard's lock for one lookup and a few integer operations; no
 * allocation unless the key is new and its chunk is not there yet.
 *
 *   hash ─► shard[h >> 56] ─lock─► index[h & mask] ─► chunk[id/64][id%64]
 *                                  (tag | id + 1)      {deficit, last,
 *                                                       family, key}
 *
 * Memory is bounded: at most max_keys entries (64 bytes each) and an index
 * of at most 8 bytes per entry (4-byte slots, load between 3/8 and 3/4). When a
 * shard is full, a new key first evicts full buckets (a full bucket and a
 * missing one give the same decisions, so this changes nothing) among the next
 * 64 entries of a rotating cursor; only when none of those is full is the one
 * that will be full soonest dropped (counted in evicted_active: such a key
 * starts again with a full bucket). A client rotating keys therefore cannot
 * grow memory past the budget: with the default 1,114,112 keys (4352 per
 * shard), 68 MiB of entries, 8 MiB of index and about 200 KiB of fixed
 * structures: 76.2 MiB at most (docs/configuration.md). */
#ifndef PORTCULLIS_BUCKET_TABLE_H
#define PORTCULLIS_BUCKET_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "portcullis/bucket.h"

#define PC_BUCKET_KEY_MAX 31
#define PC_BUCKET_TABLE_SHARDS 256
/* 4352 buckets per shard: 1,000,000 keys spread by the hash fit without
 * a shard reaching its cap (mean 3906, sd 62). */
#define PC_BUCKET_TABLE_DEFAULT_KEYS (PC_BUCKET_TABLE_SHARDS * 4352u)
/* Largest max_keys accepted (the index keeps entry ids in 16 bits). */
#define PC_BUCKET_TABLE_MAX_KEYS (PC_BUCKET_TABLE_SHARDS * 65472u)

typedef struct pc_bucket_table pc_bucket_table;

/* A table for at most max_keys buckets (0: PC_BUCKET_TABLE_DEFAULT_KEYS;
 * rounded down to a multiple of the shard count, at least one per shard,
 * at most PC_BUCKET_TABLE_MAX_KEYS). Allocates only the shards; entries
 * come on first use. Never NULL (pc_xmalloc policy). Thread-safe to use
 * from any number of threads once created. */
pc_bucket_table *pc_bucket_table_new(size_t max_keys);
/* Frees everything; no other thread may use t any more. NULL: no-op. */
void pc_bucket_table_free(pc_bucket_table *t);

/* The decision for key (len <= PC_BUCKET_KEY_MAX; longer keys are cut,
 * callers digest them first) in family under rate r at now_us
 * (microseconds, monotonic; a time earlier than the bucket's last one
 * counts as no time passing). A key not in the table starts with a full
 * bucket (created, evicting as described above when the shard is full).
 * Thread-safe. */
void pc_bucket_table_take(pc_bucket_table *t, uint64_t family, const void *key,
                          size_t len, const pc_bucket_rate *r, uint64_t now_us,
                          pc_bucket_decision *d);

typedef struct pc_bucket_table_stats {
    size_t keys;             /* buckets held now */
    size_t max_keys;         /* the cap */
    size_t bytes;            /* bytes allocated for entries, index, shards */
    uint64_t evicted_full;   /* full buckets dropped to make room */
    uint64_t evicted_active; /* non-full buckets dropped (table at its cap) */
} pc_bucket_table_stats;

/* Sums over the shards (each locked in turn). Thread-safe. */
void pc_bucket_table_stats_get(pc_bucket_table *t, pc_bucket_table_stats *s);

/* Drops every full bucket (as of now_us) of every shard, one shard lock at
 * a time; returns how many. For housekeeping and tests. Thread-safe. */
size_t pc_bucket_table_sweep(pc_bucket_table *t, uint64_t now_us);

#endif
