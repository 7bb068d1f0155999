/* jsonschema_check.h: test-only helpers shared by the JSON Schema unit
 * tests: parse JSON text, compile a schema expecting success or a given
 * error and where-pointer, validate an instance expecting success or a given
 * failure pointer and message. */
#ifndef PORTCULLIS_TEST_JSONSCHEMA_CHECK_H
#define PORTCULLIS_TEST_JSONSCHEMA_CHECK_H

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/jsonschema.h"

static inline json_t *parse(const char *text, size_t flags)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY | flags, &e);
    cr_assert_not_null(v, "test JSON does not parse: %s: %s", text, e.text);
    return v;
}

/* Compiles and drops the source document at once: the compiled schema must
 * not borrow from it. */
static inline pc_schema *compile_ok(const char *text)
{
    char err[256] = "", where[256] = "";
    json_t *doc = parse(text, 0);
    pc_schema *s =
        pc_schema_compile(doc, err, sizeof(err), where, sizeof(where));
    json_decref(doc);
    cr_assert_not_null(s, "schema %s refused: %s at '%s'", text, err, where);
    return s;
}

static inline void compile_bad(const char *text, const char *msg_part,
                               const char *where_expected)
{
    char err[256] = "", where[256] = "";
    json_t *doc = parse(text, 0);
    pc_schema *s =
        pc_schema_compile(doc, err, sizeof(err), where, sizeof(where));
    json_decref(doc);
    cr_assert_null(s, "schema %s accepted", text);
    cr_expect(strstr(err, msg_part) != NULL,
              "schema %s: message '%s' lacks '%s'", text, err, msg_part);
    cr_expect_str_eq(where, where_expected, "schema %s: where '%s' not '%s'",
                     text, where, where_expected);
}

static inline int run(const pc_schema *s, const char *inst, size_t flags,
                      char *ptr, size_t ptrlen, char *msg, size_t msglen)
{
    json_t *v = parse(inst, flags);
    int rc = pc_schema_validate(s, v, ptr, ptrlen, msg, msglen);
    json_decref(v);
    return rc;
}

static inline void ok(const pc_schema *s, const char *inst)
{
    char ptr[512] = "", msg[256] = "";
    int rc = run(s, inst, 0, ptr, sizeof(ptr), msg, sizeof(msg));
    cr_expect_eq(rc, 0, "%s refused: '%s' at '%s'", inst, msg, ptr);
}

static inline void bad(const pc_schema *s, const char *inst,
                       const char *ptr_expected, const char *msg_part)
{
    char ptr[512] = "", msg[256] = "";
    int rc = run(s, inst, 0, ptr, sizeof(ptr), msg, sizeof(msg));
    cr_expect_eq(rc, -1, "%s accepted", inst);
    cr_expect_str_eq(ptr, ptr_expected, "%s: pointer '%s' not '%s' (%s)", inst,
                     ptr, ptr_expected, msg);
    cr_expect(strstr(msg, msg_part) != NULL, "%s: message '%s' lacks '%s'",
              inst, msg, msg_part);
}

#endif
