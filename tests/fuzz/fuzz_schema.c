/* fuzz_schema.c: libFuzzer target for the JSON Schema compiler and
 * validator (pc_schema_compile at config load, pc_schema_validate on every
 * request body of a json_schema route). The input is split at its first NUL
 * byte into schema text and instance text (without a NUL, the text is both),
 * each parsed with jansson. Invariants (abort on failure): a refused schema
 * has a message; a refused instance has a message and an empty or
 * '/'-led pointer; validating twice gives the same answer, byte for byte.
 *
 * Build and run (outputs outside the repository; libFuzzer adds new inputs
 * to the first corpus directory, so give it a copy):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
 *     -Iinclude tests/fuzz/fuzz_schema.c src/lib/jsonschema*.c \
 *     src/lib/util.c -ljansson -o /tmp/fuzz_schema
 *   cp -r tests/fuzz/corpus/schema /tmp/schema_corpus
 *   /tmp/fuzz_schema -max_total_time=60 /tmp/schema_corpus */
#include "portcullis/jsonschema.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_schema: invariant broken: %s\n", what);
        abort();
    }
}

static void validate_twice(const pc_schema *s, const json_t *inst)
{
    char ptr1[256], msg1[256], ptr2[256], msg2[256];
    int rc1 =
        pc_schema_validate(s, inst, ptr1, sizeof(ptr1), msg1, sizeof(msg1));
    int rc2 =
        pc_schema_validate(s, inst, ptr2, sizeof(ptr2), msg2, sizeof(msg2));
    check(rc1 == 0 || rc1 == -1, "validate returns 0 or -1");
    check(rc1 == rc2, "validation is deterministic");
    if (rc1 == 0)
        return;
    check(msg1[0] != '\0', "an invalid instance has a message");
    check(ptr1[0] == '\0' || ptr1[0] == '/', "pointer is empty or starts /");
    check(strcmp(ptr1, ptr2) == 0 && strcmp(msg1, msg2) == 0,
          "the first failure is deterministic");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t schema_len = nul ? (size_t)(nul - data) : size;
    const char *inst_text = nul ? text + schema_len + 1 : text;
    size_t inst_len = nul ? size - schema_len - 1 : size;
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;

    json_t *schema = json_loadb(text, schema_len, flags, NULL);
    if (!schema)
        return 0;
    char err[256], where[256];
    pc_schema *s =
        pc_schema_compile(schema, err, sizeof(err), where, sizeof(where));
    json_decref(schema); /* the compiled schema must not borrow from it */
    if (!s) {
        check(err[0] != '\0', "a refused schema has a message");
        check(where[0] == '\0' || where[0] == '/', "where is a pointer");
        return 0;
    }
    json_t *inst = json_loadb(inst_text, inst_len, flags, NULL);
    if (inst) {
        validate_twice(s, inst);
        json_decref(inst);
    }
    pc_schema_free(s);
    return 0;
}
