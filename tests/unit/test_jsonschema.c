/* test_jsonschema.c: validation with the JSON Schema subset of
 * validate.json_schema (lib/jsonschema_validate.c, jsonschema_json.c): every
 * keyword valid and invalid, the pointer and message of the first failure,
 * $ref recursion, depth and cost limits, a realistic order schema. */
#include "jsonschema_check.h"

Test(jsonschema, type_single)
{
    static const struct {
        const char *type, *good, *wrong, *got;
    } cases[] = {
        {"string", "\"x\"", "1", "got integer"},
        {"number", "1.5", "\"1\"", "got string"},
        {"integer", "7", "7.5", "got number"},
        {"boolean", "false", "null", "got null"},
        {"null", "null", "0", "got integer"},
        {"object", "{}", "[]", "got array"},
        {"array", "[]", "{}", "got object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[64], expected[64];
        snprintf(text, sizeof(text), "{\"type\": \"%s\"}", cases[i].type);
        snprintf(expected, sizeof(expected), "expected %s, %s", cases[i].type,
                 cases[i].got);
        pc_schema *s = compile_ok(text);
        ok(s, cases[i].good);
        bad(s, cases[i].wrong, "", expected);
        pc_schema_free(s);
    }
}

Test(jsonschema, type_array_and_message)
{
    pc_schema *s = compile_ok("{\"type\": [\"string\", \"null\"]}");
    ok(s, "\"a\"");
    ok(s, "null");
    bad(s, "3", "", "expected string or null, got integer");
    pc_schema_free(s);
    s = compile_ok("{\"type\": [\"string\", \"integer\", \"null\"]}");
    bad(s, "true", "", "expected string, integer or null, got boolean");
    pc_schema_free(s);
}

Test(jsonschema, integer_versus_number)
{
    pc_schema *s = compile_ok("{\"type\": \"integer\"}");
    ok(s, "1");
    ok(s, "1.0");
    ok(s, "-0.0");
    ok(s, "1e300"); /* a number with a zero fractional part */
    bad(s, "1.5", "", "expected integer, got number");
    bad(s, "1e-3", "", "expected integer, got number");
    pc_schema_free(s);
    s = compile_ok("{\"type\": \"number\"}");
    ok(s, "1");
    ok(s, "-2.25");
    bad(s, "\"1\"", "", "expected number, got string");
    pc_schema_free(s);
}

Test(jsonschema, enum_values)
{
    pc_schema *s = compile_ok("{\"enum\": [\"new\", \"paid\", 1, null, "
                              "{\"a\": 1, \"b\": [true]}]}");
    ok(s, "\"paid\"");
    ok(s, "1.0"); /* 1 == 1.0 */
    ok(s, "null");
    ok(s, "{\"b\": [true], \"a\": 1.0}"); /* key order does not matter */
    bad(s, "\"shipped\"", "", "must be one of [\"new\",\"paid\",1,null,");
    bad(s, "{\"a\": 1}", "", "must be one of");
    bad(s, "{\"a\": 1, \"b\": [true], \"c\": 0}", "", "must be one of");
    bad(s, "[1]", "", "must be one of");
    bad(s, "true", "", "must be one of");
    pc_schema_free(s);
}

Test(jsonschema, enum_long_list_message)
{
    pc_schema *s = compile_ok(
        "{\"enum\": [\"aaaaaaaaaaaaaaaaaaaa\", \"bbbbbbbbbbbbbbbbbbbbbbbb\", "
        "\"cccccccccccccccccccccccc\", \"dddddddddddddddddddddddd\"]}");
    bad(s, "\"x\"", "", "must be one of the values listed in 'enum'");
    pc_schema_free(s);
}

Test(jsonschema, const_value)
{
    pc_schema *s = compile_ok("{\"const\": 1}");
    ok(s, "1");
    ok(s, "1.0");
    bad(s, "2", "", "must be equal to 1");
    bad(s, "\"1\"", "", "must be equal to 1");
    bad(s, "true", "", "must be equal to 1");
    pc_schema_free(s);
    s = compile_ok("{\"const\": null}");
    ok(s, "null");
    bad(s, "0", "", "must be equal to null");
    pc_schema_free(s);
    s = compile_ok("{\"const\": {\"x\": [1, \"a\"]}}");
    ok(s, "{\"x\": [1.0, \"a\"]}");
    bad(s, "{\"x\": [\"a\", 1]}", "", "must be equal to {\"x\":[1,\"a\"]}");
    pc_schema_free(s);
}

Test(jsonschema, minimum_maximum)
{
    pc_schema *s = compile_ok("{\"minimum\": 1, \"maximum\": 100}");
    ok(s, "1");
    ok(s, "100");
    ok(s, "100.0");
    ok(s, "50.5");
    ok(s, "\"not a number\""); /* numeric keywords ignore other types */
    bad(s, "0", "", "must be >= 1");
    bad(s, "0.999", "", "must be >= 1");
    bad(s, "101", "", "must be <= 100");
    bad(s, "100.0001", "", "must be <= 100");
    pc_schema_free(s);
    s = compile_ok("{\"exclusiveMinimum\": 0, \"exclusiveMaximum\": 2.5}");
    ok(s, "0.0001");
    ok(s, "2");
    bad(s, "0", "", "must be > 0");
    bad(s, "-0.0", "", "must be > 0");
    bad(s, "2.5", "", "must be < 2.5");
    pc_schema_free(s);
}

Test(jsonschema, big_integers_compare_exactly)
{
    /* 2^53 + 1 is not representable as a double: a comparison through
     * double would call it equal to 2^53. */
    pc_schema *s = compile_ok("{\"maximum\": 9007199254740992}");
    ok(s, "9007199254740992");
    bad(s, "9007199254740993", "", "must be <= 9007199254740992");
    pc_schema_free(s);
    s = compile_ok("{\"maximum\": 9007199254740992.0}");
    bad(s, "9007199254740993", "", "must be <= 9007199254740992");
    ok(s, "9007199254740992");
    pc_schema_free(s);
    s = compile_ok("{\"minimum\": -9.3e18}");
    ok(s, "-9223372036854775807");
    pc_schema_free(s);
    s = compile_ok("{\"maximum\": 1e19}");
    ok(s, "9223372036854775807");
    pc_schema_free(s);
}

Test(jsonschema, multiple_of)
{
    pc_schema *s = compile_ok("{\"multipleOf\": 0.01}");
    ok(s, "19.99");
    ok(s, "0.07");
    ok(s, "1234567.89");
    ok(s, "3");
    ok(s, "0");
    bad(s, "1.005", "", "must be a multiple of 0.01");
    bad(s, "0.015", "", "must be a multiple of 0.01");
    bad(s, "1e-20", "", "must be a multiple of 0.01");
    pc_schema_free(s);
    s = compile_ok("{\"multipleOf\": 3}");
    ok(s, "9");
    ok(s, "-9");
    ok(s, "9.0");
    bad(s, "10", "", "must be a multiple of 3");
    bad(s, "9.5", "", "must be a multiple of 3");
    pc_schema_free(s);
    s = compile_ok("{\"multipleOf\": 2.5}");
    ok(s, "7.5");
    ok(s, "10");
    bad(s, "11", "", "must be a multiple of 2.5");
    pc_schema_free(s);
}

Test(jsonschema, string_length_counts_code_points)
{
    pc_schema *s = compile_ok("{\"minLength\": 2, \"maxLength\": 3}");
    ok(s, "\"ab\"");
    ok(s, "\"h\u00e9\u00e9\"");                /* 3 characters, 5 bytes */
    ok(s, "\"\\ud83d\\ude00\\ud83d\\ude00\""); /* 2 emoji, 8 bytes */
    bad(s, "\"a\"", "", "must be at least 2 characters long");
    bad(s, "\"\\ud83d\\ude00\"", "", "must be at least 2 characters long");
    bad(s, "\"abcd\"", "", "must be at most 3 characters long");
    bad(s, "\"\u00e9\u00e9\u00e9\u00e9\"", "",
        "must be at most 3 characters long");
    ok(s, "7"); /* length keywords ignore other types */
    pc_schema_free(s);
    s = compile_ok("{\"maxLength\": 1}");
    ok(s, "\"\u00e9\"");
    bad(s, "\"ab\"", "", "must be at most 1 character long");
    pc_schema_free(s);
}

Test(jsonschema, pattern_unanchored_search)
{
    pc_schema *s = compile_ok("{\"pattern\": \"[0-9]\"}");
    ok(s, "\"ab1cd\"");
    bad(s, "\"abc\"", "", "does not match pattern '[0-9]'");
    pc_schema_free(s);
    s = compile_ok("{\"pattern\": \"^[a-z]+$\"}");
    ok(s, "\"abc\"");
    bad(s, "\"abc1\"", "", "does not match pattern '^[a-z]+$'");
    bad(s, "\"\"", "", "does not match pattern");
    ok(s, "12"); /* pattern ignores other types */
    pc_schema_free(s);
    s = compile_ok("{\"pattern\": \"^[[:digit:]]{3}-[[:upper:]]{2}$\"}");
    ok(s, "\"123-AB\"");
    bad(s, "\"123-ab\"", "", "does not match pattern");
    pc_schema_free(s);
    s = compile_ok("{\"pattern\": \"^(GET|HEAD)\\\\.x$\"}");
    ok(s, "\"HEAD.x\"");
    bad(s, "\"HEADax\"", "", "does not match pattern");
    pc_schema_free(s);
}

Test(jsonschema, pattern_sees_the_whole_string)
{
    /* A string holding \u0000 is matched over its full length. */
    pc_schema *s = compile_ok("{\"pattern\": \"b$\"}");
    char ptr[64], msg[128];
    cr_expect_eq(run(s, "\"a\\u0000b\"", JSON_ALLOW_NUL, ptr, sizeof(ptr), msg,
                     sizeof(msg)),
                 0, "%s", msg);
    cr_expect_eq(run(s, "\"b\\u0000a\"", JSON_ALLOW_NUL, ptr, sizeof(ptr), msg,
                     sizeof(msg)),
                 -1);
    pc_schema_free(s);
}

Test(jsonschema, items_and_counts)
{
    pc_schema *s = compile_ok("{\"minItems\": 1, \"maxItems\": 3, \"items\": "
                              "{\"type\": \"integer\"}}");
    ok(s, "[1]");
    ok(s, "[1, 2, 3.0]");
    bad(s, "[]", "", "must have at least 1 item");
    bad(s, "[1, 2, 3, 4]", "", "must have at most 3 items");
    bad(s, "[1, \"2\", 3]", "/1", "expected integer, got string");
    bad(s, "[1, 2, 3.5]", "/2", "expected integer, got number");
    ok(s, "{\"not\": \"an array\"}");
    pc_schema_free(s);
}

Test(jsonschema, prefix_items_then_items)
{
    pc_schema *s = compile_ok("{\"prefixItems\": [{\"type\": \"string\"}, "
                              "{\"type\": \"number\"}], \"items\": false}");
    ok(s, "[]");
    ok(s, "[\"a\"]");
    ok(s, "[\"a\", 2]");
    bad(s, "[1]", "/0", "expected string, got integer");
    bad(s, "[\"a\", \"b\"]", "/1", "expected number, got string");
    bad(s, "[\"a\", 2, null]", "/2", "item 2 not allowed (at most 2 items)");
    pc_schema_free(s);
    /* Without items, items after the prefix are unconstrained. */
    s = compile_ok("{\"prefixItems\": [{\"const\": \"v1\"}]}");
    ok(s, "[\"v1\", 1, {}, null]");
    bad(s, "[\"v2\"]", "/0", "must be equal to \"v1\"");
    pc_schema_free(s);
    s = compile_ok(
        "{\"prefixItems\": [true], \"items\": {\"type\": \"null\"}}");
    ok(s, "[5, null, null]");
    bad(s, "[5, null, 0]", "/2", "expected null, got integer");
    pc_schema_free(s);
}

Test(jsonschema, unique_items)
{
    pc_schema *s = compile_ok("{\"uniqueItems\": true}");
    ok(s, "[]");
    ok(s, "[1, \"1\", [1], {\"a\": 1}, true, null, 1.5]");
    ok(s, "[{\"a\": 1}, {\"a\": 2}, {\"b\": 1}]");
    ok(s, "[[1, 2], [2, 1]]");
    bad(s, "[1, 2, 1.0]", "/2", "duplicate of item 0");
    bad(s, "[{\"a\": 1, \"b\": 2}, 3, {\"b\": 2, \"a\": 1}]", "/2",
        "duplicate of item 0");
    bad(s, "[\"x\", \"y\", \"y\", \"x\"]", "/2", "duplicate of item 1");
    bad(s, "[0, -0.0]", "/1", "duplicate of item 0");
    bad(s, "[[null], 0, [null]]", "/2", "duplicate of item 0");
    pc_schema_free(s);
    s = compile_ok("{\"uniqueItems\": false}");
    ok(s, "[1, 1]");
    pc_schema_free(s);
}

Test(jsonschema, unique_items_large_array_is_fast, .timeout = 10)
{
    /* 200,000 items: pairwise comparison would take minutes. */
    pc_schema *s = compile_ok("{\"uniqueItems\": true}");
    json_t *a = json_array();
    for (int i = 0; i < 200000; i++)
        json_array_append_new(a, json_integer(i));
    char ptr[64], msg[128];
    cr_expect_eq(pc_schema_validate(s, a, ptr, sizeof(ptr), msg, sizeof(msg)),
                 0, "%s", msg);
    json_array_append_new(a, json_real(123456.0));
    cr_expect_eq(pc_schema_validate(s, a, ptr, sizeof(ptr), msg, sizeof(msg)),
                 -1);
    cr_expect_str_eq(ptr, "/200000");
    cr_expect_str_eq(msg, "duplicate of item 123456");
    json_decref(a);
    pc_schema_free(s);
}

Test(jsonschema, required_and_properties)
{
    pc_schema *s =
        compile_ok("{\"type\": \"object\", \"required\": [\"id\", \"qty\"], "
                   "\"properties\": {\"id\": {\"type\": \"string\"}, "
                   "\"qty\": {\"type\": \"integer\", \"minimum\": 1}}}");
    ok(s, "{\"id\": \"a\", \"qty\": 2, \"other\": [1]}");
    bad(s, "{\"qty\": 2}", "", "missing required property 'id'");
    bad(s, "{\"id\": \"a\"}", "", "missing required property 'qty'");
    bad(s, "{\"id\": 5, \"qty\": 2}", "/id", "expected string, got integer");
    bad(s, "{\"id\": \"a\", \"qty\": 0}", "/qty", "must be >= 1");
    pc_schema_free(s);
}

Test(jsonschema, additional_properties)
{
    pc_schema *s = compile_ok("{\"properties\": {\"a\": true}, "
                              "\"additionalProperties\": false}");
    ok(s, "{\"a\": 1}");
    ok(s, "{}");
    bad(s, "{\"a\": 1, \"x\": 2}", "/x", "additional property 'x' not allowed");
    pc_schema_free(s);
    s = compile_ok("{\"properties\": {\"a\": true}, "
                   "\"additionalProperties\": {\"type\": \"string\"}}");
    ok(s, "{\"a\": 1, \"b\": \"x\"}");
    bad(s, "{\"a\": 1, \"b\": 2}", "/b", "expected string, got integer");
    pc_schema_free(s);
    s = compile_ok("{\"properties\": {\"secret\": false}}");
    ok(s, "{\"other\": 1}");
    bad(s, "{\"secret\": 1}", "/secret", "property 'secret' not allowed");
    pc_schema_free(s);
}

Test(jsonschema, first_failure_follows_instance_key_order)
{
    pc_schema *s =
        compile_ok("{\"properties\": {\"a\": {\"type\": \"string\"}, "
                   "\"b\": {\"type\": \"string\"}}}");
    bad(s, "{\"b\": 1, \"a\": 2}", "/b", "expected string");
    bad(s, "{\"a\": 1, \"b\": 2}", "/a", "expected string");
    pc_schema_free(s);
}

Test(jsonschema, keyword_order_is_fixed)
{
    pc_schema *s = compile_ok("{\"minLength\": 5, \"type\": \"string\"}");
    bad(s, "3", "", "expected string");
    pc_schema_free(s);
    s = compile_ok("{\"multipleOf\": 3, \"minimum\": 10}");
    bad(s, "4", "", "must be >= 10");
    pc_schema_free(s);
    s = compile_ok("{\"properties\": {\"a\": {\"type\": \"string\"}}, "
                   "\"required\": [\"b\"]}");
    bad(s, "{\"a\": 1}", "", "missing required property 'b'");
    pc_schema_free(s);
    s = compile_ok(
        "{\"uniqueItems\": true, \"items\": {\"type\": \"integer\"}}");
    bad(s, "[1, 1, \"x\"]", "/2", "expected integer");
    pc_schema_free(s);
}

Test(jsonschema, pointer_escaping)
{
    pc_schema *s =
        compile_ok("{\"additionalProperties\": {\"items\": {\"properties\": "
                   "{\"price\": {\"type\": \"number\"}}}}}");
    bad(s, "{\"a/b\": [{}, {\"price\": \"x\"}]}", "/a~1b/1/price",
        "expected number");
    bad(s, "{\"m~n\": [{\"price\": null}]}", "/m~0n/0/price",
        "expected number");
    bad(s, "{\"~/\": [{\"price\": []}]}", "/~0~1/0/price", "expected number");
    pc_schema_free(s);
    s = compile_ok("{\"properties\": {\"items\": {\"items\": {\"properties\": "
                   "{\"price\": {\"minimum\": 0}}}}}}");
    bad(s, "{\"items\": [{}, {}, {}, {\"price\": -1}]}", "/items/3/price",
        "must be >= 0");
    pc_schema_free(s);
}

Test(jsonschema, small_output_buffers_truncate)
{
    pc_schema *s = compile_ok("{\"items\": {\"properties\": {\"price\": "
                              "{\"type\": \"number\"}}}}");
    char ptr[6], msg[8];
    cr_expect_eq(
        run(s, "[{\"price\": \"x\"}]", 0, ptr, sizeof(ptr), msg, sizeof(msg)),
        -1);
    cr_expect_str_eq(ptr, "/0/pr");
    cr_expect_str_eq(msg, "expecte");
    /* NULL outputs are allowed. */
    json_t *v = parse("[{\"price\": \"x\"}]", 0);
    cr_expect_eq(pc_schema_validate(s, v, NULL, 0, NULL, 0), -1);
    json_decref(v);
    pc_schema_free(s);
}

Test(jsonschema, all_any_one_not)
{
    pc_schema *s = compile_ok("{\"allOf\": [{\"type\": \"integer\"}, "
                              "{\"minimum\": 3}]}");
    ok(s, "4");
    bad(s, "\"4\"", "", "expected integer, got string");
    bad(s, "2", "", "must be >= 3");
    pc_schema_free(s);
    s = compile_ok("{\"anyOf\": [{\"type\": \"string\"}, {\"minimum\": 3}]}");
    ok(s, "\"x\"");
    ok(s, "3");
    bad(s, "2", "", "does not match any schema in anyOf");
    pc_schema_free(s);
    s = compile_ok("{\"oneOf\": [{\"type\": \"integer\"}, {\"type\": "
                   "\"number\", \"minimum\": 3}, {\"type\": \"string\"}]}");
    ok(s, "1");     /* only the first */
    ok(s, "3.5");   /* only the second */
    ok(s, "\"s\""); /* only the third */
    bad(s, "5", "", "matches more than one schema in oneOf (0 and 1)");
    bad(s, "null", "", "does not match any schema in oneOf");
    pc_schema_free(s);
    s = compile_ok("{\"not\": {\"type\": \"null\"}}");
    ok(s, "0");
    bad(s, "null", "", "must not match the schema in 'not'");
    pc_schema_free(s);
}

Test(jsonschema, nested_failure_inside_all_of_keeps_its_pointer)
{
    pc_schema *s = compile_ok("{\"allOf\": [{\"properties\": {\"a\": "
                              "{\"items\": {\"type\": \"string\"}}}}]}");
    bad(s, "{\"a\": [\"x\", 1]}", "/a/1", "expected string, got integer");
    pc_schema_free(s);
    /* A failure inside anyOf is not the answer: anyOf is. */
    s = compile_ok("{\"properties\": {\"a\": {\"anyOf\": [{\"items\": "
                   "{\"type\": \"string\"}}, {\"type\": \"null\"}]}}}");
    bad(s, "{\"a\": [\"x\", 1]}", "/a", "does not match any schema in anyOf");
    pc_schema_free(s);
}

Test(jsonschema, boolean_schemas)
{
    pc_schema *s = compile_ok("true");
    ok(s, "{\"anything\": [1, 2]}");
    ok(s, "null");
    pc_schema_free(s);
    s = compile_ok("false");
    bad(s, "null", "", "not allowed (schema is false)");
    pc_schema_free(s);
    s = compile_ok("{}");
    ok(s, "[1, \"x\"]");
    pc_schema_free(s);
    s = compile_ok("{\"allOf\": [true, false]}");
    bad(s, "1", "", "not allowed");
    pc_schema_free(s);
    s = compile_ok("{\"not\": false}");
    ok(s, "1");
    pc_schema_free(s);
}

static const char *tree_schema =
    "{\"$defs\": {\"node\": {\"type\": \"object\", \"required\": [\"value\"],"
    " \"properties\": {\"value\": {\"type\": \"integer\"},"
    " \"children\": {\"type\": \"array\", \"items\": "
    "{\"$ref\": \"#/$defs/node\"}}},"
    " \"additionalProperties\": false}},"
    " \"$ref\": \"#/$defs/node\"}";

Test(jsonschema, ref_recursive_tree)
{
    pc_schema *s = compile_ok(tree_schema);
    ok(s, "{\"value\": 1}");
    ok(s, "{\"value\": 1, \"children\": [{\"value\": 2}, {\"value\": 3, "
          "\"children\": [{\"value\": 4, \"children\": []}]}]}");
    bad(s,
        "{\"value\": 1, \"children\": [{\"value\": 2}, {\"value\": 3, "
        "\"children\": [{\"value\": \"4\"}]}]}",
        "/children/1/children/0/value", "expected integer, got string");
    bad(s, "{\"value\": 1, \"children\": [{}]}", "/children/0",
        "missing required property 'value'");
    bad(s, "{\"value\": 1, \"children\": [{\"value\": 2, \"x\": 0}]}",
        "/children/0/x", "additional property 'x' not allowed");
    pc_schema_free(s);
}

Test(jsonschema, ref_to_root_and_siblings)
{
    /* "#" recursion, and $ref applying beside other keywords (2020-12). */
    pc_schema *s = compile_ok("{\"type\": [\"array\", \"integer\"], "
                              "\"items\": {\"$ref\": \"#\"}}");
    ok(s, "[1, [2, [3, []]]]");
    bad(s, "[1, [2, [\"3\"]]]", "/1/1/0", "expected array or integer");
    pc_schema_free(s);
    s = compile_ok("{\"$defs\": {\"pos\": {\"minimum\": 0}}, "
                   "\"properties\": {\"n\": {\"$ref\": \"#/$defs/pos\", "
                   "\"maximum\": 10}}}");
    ok(s, "{\"n\": 5}");
    bad(s, "{\"n\": -1}", "/n", "must be >= 0");
    bad(s, "{\"n\": 11}", "/n", "must be <= 10");
    pc_schema_free(s);
}

Test(jsonschema, shared_refs_do_not_explode, .timeout = 10)
{
    /* Each level reaches the next through two paths: without memoising
     * results at $ref targets this is 2^60 evaluations. */
    pc_schema *s = compile_ok(
        "{\"$defs\": {\"t\": {\"anyOf\": [{\"type\": \"integer\"}, "
        "{\"allOf\": [{\"items\": {\"$ref\": \"#/$defs/t\"}}, "
        "{\"items\": {\"$ref\": \"#/$defs/t\"}}, {\"type\": \"array\"}]}]}}, "
        "\"$ref\": \"#/$defs/t\"}");
    char deep[256] = "", bad_deep[256] = "";
    for (int i = 0; i < 60; i++)
        strcat(deep, "[");
    strcat(deep, "1");
    for (int i = 0; i < 60; i++)
        strcat(deep, "]");
    ok(s, deep);
    for (int i = 0; i < 60; i++)
        strcat(bad_deep, "[");
    strcat(bad_deep, "\"x\"");
    for (int i = 0; i < 60; i++)
        strcat(bad_deep, "]");
    bad(s, bad_deep, "", "does not match any schema in anyOf");
    pc_schema_free(s);
}

static char *nested_arrays(int levels)
{
    char *t = malloc((size_t)levels * 2 + 1);
    for (int i = 0; i < levels; i++)
        t[i] = '[';
    for (int i = 0; i < levels; i++)
        t[levels + i] = ']';
    t[levels * 2] = '\0';
    return t;
}

Test(jsonschema, instance_depth_limit)
{
    pc_schema *s = compile_ok("true");
    char *t = nested_arrays(64);
    ok(s, t);
    free(t);
    t = nested_arrays(65);
    char expected[200] = "";
    for (int i = 0; i < 64; i++)
        strcat(expected, "/0");
    bad(s, t, expected, "nested deeper than 64 levels");
    free(t);
    pc_schema_free(s);
    /* Objects count too, and scalars inside the last level are fine. */
    s = compile_ok("{}");
    char obj[1024] = "";
    for (int i = 0; i < 64; i++)
        strcat(obj, "{\"k\":");
    strcat(obj, "1");
    for (int i = 0; i < 64; i++)
        strcat(obj, "}");
    ok(s, obj);
    pc_schema_free(s);
}

static const char *order_schema =
    "{"
    " \"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
    " \"title\": \"order\","
    " \"type\": \"object\","
    " \"required\": [\"id\", \"customer\", \"items\", \"status\"],"
    " \"additionalProperties\": false,"
    " \"properties\": {"
    "  \"id\": {\"type\": \"string\", \"pattern\": \"^ord_[0-9a-f]{8}$\"},"
    "  \"customer\": {\"type\": \"object\", \"required\": [\"email\"],"
    "   \"properties\": {\"email\": {\"type\": \"string\", \"maxLength\": 254,"
    "     \"pattern\": \"^[^@[:space:]]+@[^@[:space:]]+$\"},"
    "    \"address\": {\"$ref\": \"#/$defs/address\"}}},"
    "  \"items\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 100,"
    "   \"items\": {\"$ref\": \"#/$defs/line\"}},"
    "  \"status\": {\"enum\": [\"new\", \"paid\", \"shipped\"]},"
    "  \"coupon\": {\"type\": [\"string\", \"null\"]},"
    "  \"tags\": {\"type\": \"array\", \"uniqueItems\": true,"
    "   \"items\": {\"type\": \"string\", \"minLength\": 1}}"
    " },"
    " \"$defs\": {"
    "  \"money\": {\"type\": \"number\", \"minimum\": 0, \"multipleOf\": 0.01},"
    "  \"line\": {\"type\": \"object\", \"required\": [\"sku\", \"qty\", "
    "\"price\"],"
    "   \"properties\": {\"sku\": {\"type\": \"string\"},"
    "    \"qty\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100},"
    "    \"price\": {\"$ref\": \"#/$defs/money\"}}},"
    "  \"address\": {\"type\": \"object\", \"required\": [\"country\"],"
    "   \"properties\": {\"country\": {\"type\": \"string\", \"minLength\": 2,"
    "     \"maxLength\": 2}}}"
    " }"
    "}";

Test(jsonschema, realistic_order)
{
    pc_schema *s = compile_ok(order_schema);
    ok(s, "{\"id\": \"ord_0123abcd\", \"customer\": {\"email\": "
          "\"a@example.com\", \"address\": {\"country\": \"FR\"}}, "
          "\"items\": [{\"sku\": \"X1\", \"qty\": 2, \"price\": 19.99}, "
          "{\"sku\": \"X2\", \"qty\": 1.0, \"price\": 5}], "
          "\"status\": \"paid\", \"coupon\": null, \"tags\": [\"a\", \"b\"]}");
    bad(s,
        "{\"id\": \"ord_0123abcd\", \"customer\": {\"email\": "
        "\"a@example.com\"}, \"items\": [{\"sku\": \"X1\", \"qty\": 2, "
        "\"price\": 19.999}], \"status\": \"paid\"}",
        "/items/0/price", "must be a multiple of 0.01");
    bad(s,
        "{\"id\": \"ord_0123abcd\", \"customer\": {\"email\": "
        "\"a@example.com\"}, \"items\": [{\"sku\": \"X1\", \"qty\": 2, "
        "\"price\": 1}, {\"sku\": \"X2\", \"qty\": 0, \"price\": 1}], "
        "\"status\": \"paid\"}",
        "/items/1/qty", "must be >= 1");
    bad(s,
        "{\"id\": \"ORD-1\", \"customer\": {\"email\": \"a@b\"}, "
        "\"items\": [], \"status\": \"paid\"}",
        "/id", "does not match pattern '^ord_[0-9a-f]{8}$'");
    bad(s,
        "{\"id\": \"ord_0123abcd\", \"customer\": {\"email\": \"a@b\"}, "
        "\"items\": [], \"status\": \"paid\"}",
        "/items", "must have at least 1 item");
    bad(s,
        "{\"id\": \"ord_0123abcd\", \"customer\": {\"email\": \"a@b\"}, "
        "\"items\": [{\"sku\": \"X\", \"qty\": 1, \"price\": 1}], "
        "\"status\": \"lost\"}",
        "/status", "must be one of [\"new\",\"paid\",\"shipped\"]");
    bad(s,
        "{\"id\": \"ord_0123abcd\", \"customer\": {\"email\": \"a@b\", "
        "\"address\": {\"country\": \"FRA\"}}, \"items\": [{\"sku\": \"X\", "
        "\"qty\": 1, \"price\": 1}], \"status\": \"new\"}",
        "/customer/address/country", "must be at most 2 characters long");
    bad(s,
        "{\"id\": \"ord_0123abcd\", \"customer\": {\"email\": \"a@b\"}, "
        "\"items\": [{\"sku\": \"X\", \"qty\": 1, \"price\": 1}], "
        "\"status\": \"new\", \"tags\": [\"x\", \"x\"]}",
        "/tags/1", "duplicate of item 0");
    bad(s,
        "{\"id\": \"ord_0123abcd\", \"customer\": {\"email\": \"a@b\"}, "
        "\"items\": [{\"sku\": \"X\", \"qty\": 1, \"price\": 1}], "
        "\"status\": \"new\", \"note\": \"hi\"}",
        "/note", "additional property 'note' not allowed");
    bad(s, "{\"customer\": {\"email\": \"a@b\"}}", "",
        "missing required property 'id'");
    bad(s, "[]", "", "expected object, got array");
    pc_schema_free(s);
}

Test(jsonschema, one_schema_many_validations)
{
    /* Validation never changes the schema: the same answers every time,
     * and memo tables do not leak between calls. */
    pc_schema *s = compile_ok(tree_schema);
    for (int i = 0; i < 100; i++) {
        ok(s, "{\"value\": 1, \"children\": [{\"value\": 2}]}");
        bad(s, "{\"value\": 1, \"children\": [{\"value\": null}]}",
            "/children/0/value", "expected integer, got null");
    }
    pc_schema_free(s);
}

/* {"not": {"not": ... {}}} with n "not"s: valid when n is even. */
static char *nested_nots(int n)
{
    char *t = malloc((size_t)n * 9 + 3);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        memcpy(t + o, "{\"not\":", 7);
        o += 7;
    }
    memcpy(t + o, "{}", 2);
    o += 2;
    for (int i = 0; i < n; i++)
        t[o++] = '}';
    t[o] = '\0';
    return t;
}

Test(jsonschema, subschema_nesting_limit)
{
    char *text = nested_nots(1000);
    pc_schema *s = compile_ok(text);
    ok(s, "1");
    pc_schema_free(s);
    free(text);
    text = nested_nots(1001);
    s = compile_ok(text);
    bad(s, "1", "", "must not match the schema in 'not'");
    pc_schema_free(s);
    free(text);
    /* Past the limit the answer is "invalid", whatever `not` would make of
     * the branch that hit it. */
    text = nested_nots(1100);
    s = compile_ok(text);
    bad(s, "1", "", "schema nesting deeper than 1024 subschemas here");
    bad(s, "[1]", "", "schema nesting deeper than 1024 subschemas here");
    pc_schema_free(s);
    free(text);
}
