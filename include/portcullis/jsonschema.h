/* jsonschema.h: JSON Schema (draft 2020-12 subset) for validate.json_schema
 * (CONTRACT §2 "Validation details", §4 400 invalid_body).
 *
 * A schema is compiled once, at config load, into an immutable pc_schema;
 * workers then validate request bodies against it concurrently without
 * locks of our own (glibc's regexec takes a short per-pattern mutex).
 *
 * Supported keywords, the pattern dialect, the evaluation order and the
 * limits are described in docs/json-schema.md; in short:
 *  - every keyword outside the supported set is a compile error, never
 *    silently ignored;
 *  - $ref only points at "#" or "#/$defs/NAME" ($defs only at the root);
 *  - instances nested deeper than PC_SCHEMA_MAX_DEPTH containers are invalid
 *    whatever the schema says;
 *  - validation costs at most (instance values x compiled subschemas) subschema
 *    evaluations, plus O(n log n) per array for uniqueItems. */
#ifndef PORTCULLIS_JSONSCHEMA_H
#define PORTCULLIS_JSONSCHEMA_H

#include <stddef.h>

#include <jansson.h>

/* Containers (arrays, objects) an instance may nest: the root container is
 * level 1, a container at level 65 makes the instance invalid. Also the
 * longest chain of $ref a schema may follow without descending into the
 * instance. */
#define PC_SCHEMA_MAX_DEPTH 64

typedef struct pc_schema pc_schema;

/* Compiles `schema` (a JSON object or boolean; borrowed, not kept: values
 * the compiled form needs are referenced with json_incref). Returns the
 * compiled schema, owned by the caller (pc_schema_free), or NULL with a
 * message in err ("unsupported keyword 'format'", "'minimum' must be a
 * number", "'$ref' must point into #/$defs") and, in where, the RFC 6901
 * JSON pointer of the offending place in the schema
 * ("/properties/id/minimum"; "" for the root). err and where may be NULL
 * or zero-sized; output is always NUL-terminated and truncated to fit. */
pc_schema *pc_schema_compile(const json_t *schema, char *err, size_t errlen,
                             char *where, size_t wherelen);

/* Frees a compiled schema; NULL is allowed. */
void pc_schema_free(pc_schema *s);

/* Validates `instance` (borrowed). Returns 0 when valid, -1 when invalid;
 * then ptr holds the RFC 6901 pointer of the first failing location in the
 * instance ("" for the root, "/items/3/price"; '~' and '/' in keys escaped
 * as ~0 and ~1) and msg a short message ("expected integer, got string",
 * "missing required property 'id'", "must be <= 100"). The first failure is
 * deterministic: keywords in the fixed order of docs/json-schema.md, object
 * members in the instance's key order, array items by index. ptr and msg
 * may be NULL or zero-sized; output is NUL-terminated and truncated to fit.
 * Never modifies the schema: one pc_schema serves many threads at once. */
int pc_schema_validate(const pc_schema *s, const json_t *instance, char *ptr,
                       size_t ptrlen, char *msg, size_t msglen);

#endif
