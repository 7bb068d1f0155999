/* test_jsonschema_load.c: what pc_schema_compile refuses and where
 * (lib/jsonschema.c, jsonschema_pattern.c): unsupported keywords, wrong
 * keyword values, patterns outside POSIX ERE or too costly, $ref targets,
 * $ref cycles that never descend into the instance. */
#include "jsonschema_check.h"

Test(jsonschema, pattern_refusals)
{
    compile_bad("{\"properties\": {\"code\": {\"pattern\": \"^\\\\d+$\"}}}",
                "'\\d' is not POSIX ERE: write [0-9]",
                "/properties/code/pattern");
    compile_bad("{\"pattern\": \"\\\\s\"}", "write [[:space:]]", "/pattern");
    compile_bad("{\"pattern\": \"\\\\w+\"}", "write [A-Za-z0-9_]", "/pattern");
    compile_bad("{\"pattern\": \"(a)\\\\1\"}", "back-references", "/pattern");
    compile_bad("{\"pattern\": \"\\\\<word\"}", "word boundaries", "/pattern");
    compile_bad("{\"pattern\": \"[\\\\w-]\"}", "backslash inside [...]",
                "/pattern");
    compile_bad("{\"pattern\": \"(?:ab)+\"}", "'(?' groups", "/pattern");
    compile_bad("{\"pattern\": \"[\u00e9]\"}", "non-ASCII", "/pattern");
    compile_bad("{\"pattern\": \"[a\"}", "invalid pattern", "/pattern");
    compile_bad("{\"pattern\": \"a{2,1}\"}", "invalid pattern", "/pattern");
    compile_bad("{\"pattern\": \"*a\"}", "invalid pattern", "/pattern");
    compile_bad("{\"pattern\": \"((a{100}){100}){100}\"}", "too complex",
                "/pattern");
    compile_bad("{\"pattern\": \"(a|b){3000}\"}", "too complex", "/pattern");
    compile_bad("{\"pattern\": "
                "\"((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))"
                "))))))))))\"}",
                "deeper than 32", "/pattern");
    compile_bad("{\"pattern\": 5}", "'pattern' must be a string", "/pattern");
    /* Escaped punctuation and POSIX classes are fine. */
    pc_schema *s = compile_ok("{\"pattern\": \"^\\\\$[0-9]+\\\\.[0-9]{2}$\"}");
    ok(s, "\"$12.50\"");
    bad(s, "\"12.50\"", "", "does not match pattern");
    pc_schema_free(s);
    s = compile_ok("{\"pattern\": \"^[]a]+[^]b]$\"}");
    ok(s, "\"]a]c\"");
    bad(s, "\"]a]b\"", "", "does not match pattern");
    pc_schema_free(s);
}

Test(jsonschema, ref_names_are_unescaped)
{
    pc_schema *s = compile_ok(
        "{\"$defs\": {\"a/b\": {\"type\": \"string\"}, \"c~d\": {\"type\": "
        "\"integer\"}, \"e f%\": {\"type\": \"null\"}},"
        " \"prefixItems\": [{\"$ref\": \"#/$defs/a~1b\"}, "
        "{\"$ref\": \"#/$defs/c~0d\"}, {\"$ref\": \"#/$defs/e%20f%25\"}]}");
    ok(s, "[\"x\", 1, null]");
    bad(s, "[\"x\", 1, 0]", "/2", "expected null");
    pc_schema_free(s);
}

Test(jsonschema, ref_errors)
{
    compile_bad("{\"properties\": {\"a\": {\"$ref\": \"#/$defs/nope\"}}}",
                "'$ref' target '#/$defs/nope' is not defined",
                "/properties/a/$ref");
    compile_bad("{\"$ref\": \"other.json#/$defs/x\"}",
                "'$ref' must point into #/$defs", "/$ref");
    compile_bad("{\"$defs\": {\"x\": {}}, \"$ref\": \"#/properties/x\"}",
                "'$ref' must point into #/$defs", "/$ref");
    compile_bad("{\"$defs\": {\"x\": {}}, \"$ref\": \"#/$defs/x/items\"}",
                "'$ref' must point into #/$defs", "/$ref");
    compile_bad("{\"$defs\": {\"x\": {}}, \"$ref\": \"#/$defs/x%2\"}",
                "malformed %-escape", "/$ref");
    compile_bad("{\"$defs\": {\"x\": {}}, \"$ref\": \"#/$defs/x~2\"}",
                "malformed ~-escape", "/$ref");
    compile_bad("{\"$ref\": 3}", "'$ref' must be a string", "/$ref");
    compile_bad("{\"$defs\": []}", "'$defs' must be an object", "/$defs");
}

Test(jsonschema, ref_cycles_without_progress_are_refused)
{
    compile_bad("{\"$ref\": \"#\"}", "loops back", "/$ref");
    compile_bad("{\"allOf\": [{\"$ref\": \"#\"}]}", "loops back",
                "/allOf/0/$ref");
    compile_bad("{\"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, "
                "\"b\": {\"not\": {\"$ref\": \"#/$defs/a\"}}}, "
                "\"properties\": {\"x\": {\"$ref\": \"#/$defs/a\"}}}",
                "'$ref' to '#/$defs/a' loops back", "/$defs/b/not/$ref");
    /* A cycle in definitions nobody uses is still an error. */
    compile_bad(
        "{\"$defs\": {\"a\": {\"anyOf\": [{\"$ref\": \"#/$defs/a\"}]}}}",
        "loops back", "/$defs/a/anyOf/0/$ref");
    /* Through a keyword that descends, recursion is fine. */
    pc_schema *s =
        compile_ok("{\"$defs\": {\"a\": {\"properties\": {\"next\": "
                   "{\"$ref\": \"#/$defs/a\"}}}}, \"$ref\": \"#/$defs/a\"}");
    ok(s, "{\"next\": {\"next\": {}}}");
    pc_schema_free(s);
}

/* "$defs": {"d0": {"$ref": "#/$defs/d1"}, ..., "d<n-1>": {"type": "null"}},
 * "$ref": "#/$defs/d0": a chain of n in-place references. */
static char *ref_chain(int n)
{
    size_t cap = 64 + (size_t)n * 48, o = 0;
    char *t = malloc(cap);
    o += (size_t)snprintf(t + o, cap - o, "{\"$defs\": {");
    for (int i = 0; i < n - 1; i++)
        o += (size_t)snprintf(
            t + o, cap - o, "\"d%d\": {\"$ref\": \"#/$defs/d%d\"}, ", i, i + 1);
    snprintf(t + o, cap - o,
             "\"d%d\": {\"type\": \"null\"}}, \"$ref\": \"#/$defs/d0\"}",
             n - 1);
    return t;
}

Test(jsonschema, ref_chain_length_limit)
{
    char *text = ref_chain(64); /* 64 $ref hops from the root */
    pc_schema *s = compile_ok(text);
    ok(s, "null");
    bad(s, "1", "", "expected null, got integer");
    pc_schema_free(s);
    free(text);
    text = ref_chain(65);
    compile_bad(text, "'$ref' chain longer than 64", "/$ref");
    free(text);
}

Test(jsonschema, unsupported_keywords)
{
    compile_bad("{\"properties\": {\"id\": {\"type\": \"string\", "
                "\"format\": \"uuid\"}}}",
                "unsupported keyword 'format'", "/properties/id/format");
    compile_bad("{\"if\": {}, \"then\": {}}", "unsupported keyword 'if'",
                "/if");
    compile_bad("{\"patternProperties\": {}}",
                "unsupported keyword 'patternProperties'",
                "/patternProperties");
    compile_bad("{\"$defs\": {\"x\": {\"minProperties\": 1}}}",
                "unsupported keyword 'minProperties'",
                "/$defs/x/minProperties");
    compile_bad("{\"items\": [{\"type\": \"string\"}]}", "use 'prefixItems'",
                "/items");
    compile_bad("{\"definitions\": {}}", "unsupported keyword 'definitions'",
                "/definitions");
    compile_bad("{\"prefixItems\": [{}, {\"a/b~\": 1}]}",
                "unsupported keyword 'a/b~'", "/prefixItems/1/a~1b~0");
}

Test(jsonschema, keyword_value_errors)
{
    compile_bad("{\"properties\": {\"id\": {\"minimum\": \"1\"}}}",
                "'minimum' must be a number", "/properties/id/minimum");
    compile_bad("{\"exclusiveMaximum\": true}",
                "'exclusiveMaximum' must be a number", "/exclusiveMaximum");
    compile_bad("{\"multipleOf\": 0}", "'multipleOf' must be a number greater",
                "/multipleOf");
    compile_bad("{\"multipleOf\": -0.5}", "greater than 0", "/multipleOf");
    compile_bad("{\"minLength\": -1}", "'minLength' must be a non-negative",
                "/minLength");
    compile_bad("{\"maxItems\": 1.5}", "'maxItems' must be a non-negative",
                "/maxItems");
    compile_bad("{\"type\": \"str\"}", "unknown type 'str'", "/type");
    compile_bad("{\"type\": [\"string\", \"float\"]}", "unknown type 'float'",
                "/type/1");
    compile_bad("{\"type\": [\"string\", \"string\"]}", "lists 'string' twice",
                "/type/1");
    compile_bad("{\"type\": []}", "'type' must be", "/type");
    compile_bad("{\"type\": 3}", "'type' must be", "/type");
    compile_bad("{\"required\": [\"a\", 1]}", "'required' must be an array",
                "/required/1");
    compile_bad("{\"required\": [\"a\", \"a\"]}", "lists 'a' twice",
                "/required/1");
    compile_bad("{\"enum\": 1}", "'enum' must be an array", "/enum");
    compile_bad("{\"anyOf\": []}", "'anyOf' must be a non-empty array",
                "/anyOf");
    compile_bad("{\"allOf\": [{}, 3]}",
                "a schema must be an object or a "
                "boolean",
                "/allOf/1");
    compile_bad("{\"properties\": {\"a\": \"string\"}}",
                "a schema must be an object", "/properties/a");
    compile_bad("{\"uniqueItems\": 1}", "'uniqueItems' must be a boolean",
                "/uniqueItems");
    compile_bad("[]", "a schema must be an object or a boolean", "");
    compile_bad("{\"items\": {\"$defs\": {}}}",
                "'$defs' is only supported "
                "at the root",
                "/items/$defs");
    compile_bad("{\"not\": {\"$id\": \"x\"}}", "'$id' is only supported",
                "/not/$id");
    compile_bad("{\"title\": 5}", "'title' must be a string", "/title");
    compile_bad("{\"readOnly\": \"yes\"}", "'readOnly' must be a boolean",
                "/readOnly");
}

Test(jsonschema, counts_accept_integral_reals)
{
    pc_schema *s = compile_ok("{\"maxItems\": 2.0, \"minLength\": 1.0}");
    ok(s, "[1, 2]");
    bad(s, "[1, 2, 3]", "", "must have at most 2 items");
    pc_schema_free(s);
}

Test(jsonschema, annotations_are_accepted)
{
    pc_schema *s = compile_ok(
        "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", "
        "\"$id\": \"https://example.com/order.json\", \"$comment\": \"c\", "
        "\"title\": \"t\", \"description\": \"d\", \"default\": {}, "
        "\"examples\": [1], \"deprecated\": false, \"readOnly\": true, "
        "\"writeOnly\": false, \"type\": \"object\"}");
    ok(s, "{}");
    bad(s, "[]", "", "expected object");
    pc_schema_free(s);
}

Test(jsonschema, compile_outputs_are_optional)
{
    json_t *doc = parse("{\"format\": \"x\"}", 0);
    cr_expect_null(pc_schema_compile(doc, NULL, 0, NULL, 0));
    cr_expect_null(pc_schema_compile(NULL, NULL, 0, NULL, 0));
    json_decref(doc);
    pc_schema_free(NULL);
}

/* compile_bad for a pattern given as the raw regex (JSON-escaped here). */
static void pattern_bad(const char *re, const char *msg_part)
{
    json_t *doc = json_pack("{s:s}", "pattern", re);
    char *text = json_dumps(doc, 0);
    compile_bad(text, msg_part, "/pattern");
    free(text);
    json_decref(doc);
}

static void pattern_ok(const char *re)
{
    json_t *doc = json_pack("{s:s}", "pattern", re);
    char *text = json_dumps(doc, 0);
    pc_schema_free(compile_ok(text));
    free(text);
    json_decref(doc);
}

static char *repeated(const char *head, const char *unit, int n,
                      const char *tail)
{
    size_t len = strlen(head) + strlen(unit) * (size_t)n + strlen(tail) + 1;
    char *t = malloc(len);
    strcpy(t, head);
    for (int i = 0; i < n; i++)
        strcat(t, unit);
    strcat(t, tail);
    return t;
}

Test(jsonschema, pattern_refuses_loops_over_the_empty_string, .timeout = 10)
{
    /* Found by fuzz_schema: glibc's regcomp took 14 s on this (stacked
     * stars after an anchor; "$x" and 92 stars alone take 2 s). */
    pattern_bad("y1|83,+x1*+3,ay/a%+x$]*x****************"
                "************************************************************"
                "****************3*++x|y+xT$3*$",
                "two repetition operators in a row");
    pattern_bad("^(x*)*", "can match the empty string");
    pattern_bad("a**", "two repetition operators in a row");
    pattern_bad("^a.*?b$", "no lazy quantifiers");
    /* ECMA-262 reads this as "a, one or more x lazily, b"; POSIX as
     * "a(x+)?b", which would let "ab" through. */
    pattern_bad("^ax+?b$", "reads x+? as (x+)?");
    pattern_bad("(a|)+", "can match the empty string");
    pattern_bad("^(a|^)+", "can match the empty string");
    pattern_bad("(x?){2}", "can match the empty string");
    pattern_bad("(a*b*)*", "can match the empty string");
    pattern_bad("^$x(x*)*$", "can match the empty string");
    /* Loops over something that cannot be empty are fine. */
    pattern_ok("^(a+)+$");
    pattern_ok("^(x+)?$");
    pattern_ok("^(a*b)*$");
    pattern_ok("^(-[0-9]*)?$");
    pattern_ok("^(ab|c)+(d|e*f){2,3}$");
}

Test(jsonschema, pattern_nullable_parts_are_bounded, .timeout = 10)
{
    char *re = repeated("^", "(a*|b*)", 30, "$"); /* 90 nullable parts */
    pattern_ok(re);
    free(re);
    re = repeated("^", "(a*|b*)", 40, "$");
    pattern_bad(re, "more than 100 parts that can match the empty string");
    free(re);
}
