/* test_node.c: the YAML loader (src/config/node.c): positions, ${ENV}
 * expansion, rejected YAML features, file errors, and the typed readers,
 * checked against their exact "FILE:LINE:COL: message" output. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "portcullis/node.h"

/* Writes text to a fresh temporary file; the caller unlinks and frees. */
static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/pc_node_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static pc_errors errs;

static pc_node *load(const char *text)
{
    pc_errors_init(&errs, "t.yaml");
    return pc_node_load_string(text, strlen(text), &errs);
}

static void done(pc_node *root)
{
    pc_node_free(root);
    pc_errors_free(&errs);
}

static void expect_errors(const char *const *want, size_t n)
{
    for (size_t i = 0; i < errs.n && i < n; i++)
        cr_expect_str_eq(errs.msgs[i], want[i]);
    cr_assert_eq(errs.n, n, "expected %zu errors, got %zu (first: %s)", n,
                 errs.n, errs.n ? errs.msgs[0] : "-");
}

#define EXPECT(...)                                                            \
    do {                                                                       \
        static const char *const want_[] = {__VA_ARGS__};                      \
        expect_errors(want_, sizeof want_ / sizeof want_[0]);                  \
    } while (0)

Test(node, tree_with_positions)
{
    pc_node *r = load("a: 1\n"
                      "list:\n"
                      "  - x\n"
                      "  - {k: v}\n"
                      "'q': \"quoted\"\n"
                      "n: ~\n"
                      "e:\n");
    cr_assert_not_null(r);
    cr_assert_eq(errs.n, 0);
    cr_assert_eq(r->kind, PC_NODE_MAP);
    cr_assert_eq(r->n, 5);
    pc_node *a = pc_node_get(r, "a");
    cr_assert_str_eq(a->value, "1");
    cr_assert_eq(a->line, 1);
    cr_assert_eq(a->col, 4);
    cr_assert_eq(r->keys[0]->line, 1);
    cr_assert_eq(r->keys[0]->col, 1);
    pc_node *list = pc_node_get(r, "list");
    cr_assert_eq(list->kind, PC_NODE_SEQ);
    cr_assert_eq(list->n, 2);
    cr_assert_eq(list->vals[0]->line, 3);
    cr_assert_eq(list->vals[0]->col, 5);
    cr_assert_eq(list->vals[1]->kind, PC_NODE_MAP);
    cr_assert_str_eq(pc_node_get(list->vals[1], "k")->value, "v");
    pc_node *q = pc_node_get(r, "q");
    cr_assert(q->quoted);
    cr_assert(!q->is_null);
    cr_assert_eq(q->col, 6);
    cr_assert(pc_node_get(r, "n")->is_null);
    cr_assert(pc_node_get(r, "e")->is_null);
    cr_assert_null(pc_node_get(r, "missing"));
    cr_assert_null(pc_node_get(a, "a")); /* not a map */
    done(r);
}

Test(node, quoted_null_is_a_string)
{
    pc_node *r = load("a: 'null'\nb: \"\"\nc: null\n");
    cr_assert_eq(errs.n, 0);
    cr_assert(!pc_node_get(r, "a")->is_null);
    cr_assert(!pc_node_get(r, "b")->is_null);
    cr_assert(pc_node_get(r, "c")->is_null);
    done(r);
}

Test(node, env_expansion)
{
    setenv("PC_T_NODE_A", "hello", 1);
    setenv("PC_T_NODE_EMPTY", "", 1);
    pc_node *r = load("a: pre-${PC_T_NODE_A}-post\n"
                      "b: ${PC_T_NODE_A}${PC_T_NODE_A}\n"
                      "c: cost $5 and $x and $\n"
                      "d: \"${PC_T_NODE_EMPTY}\"\n"
                      "${PC_T_NODE_A}: key\n");
    cr_assert_eq(errs.n, 0, "%s", errs.n ? errs.msgs[0] : "");
    cr_assert_str_eq(pc_node_get(r, "a")->value, "pre-hello-post");
    cr_assert_str_eq(pc_node_get(r, "b")->value, "hellohello");
    cr_assert_str_eq(pc_node_get(r, "c")->value, "cost $5 and $x and $");
    cr_assert_str_eq(pc_node_get(r, "d")->value, "");
    cr_assert_str_eq(pc_node_get(r, "hello")->value, "key");
    done(r);
}

/* Issue 7 E.18: /admin/config hides every value that came from ${ENV}, so
 * the loader marks each scalar that had a reference, wherever it sat. */
Test(node, env_values_are_marked_from_env)
{
    setenv("PC_T_NODE_A", "hello", 1);
    setenv("PC_T_NODE_EMPTY", "", 1);
    pc_node *r = load("a: ${PC_T_NODE_A}\n"
                      "b: \"Bearer ${PC_T_NODE_A}\"\n"
                      "c: \"${PC_T_NODE_EMPTY}\"\n"
                      "d: literal\n"
                      "e: cost $5 and $x\n"
                      "f: [one, \"${PC_T_NODE_A}-two\"]\n"
                      "g: {k: v}\n"
                      "${PC_T_NODE_A}-key: plain\n");
    cr_assert_eq(errs.n, 0, "%s", errs.n ? errs.msgs[0] : "");
    cr_assert_eq(pc_node_get(r, "a")->from_env, 1);
    cr_assert_eq(pc_node_get(r, "b")->from_env, 1);
    cr_assert_str_eq(pc_node_get(r, "b")->value, "Bearer hello");
    cr_assert_eq(pc_node_get(r, "c")->from_env, 1); /* even when empty */
    cr_assert_eq(pc_node_get(r, "d")->from_env, 0);
    cr_assert_eq(pc_node_get(r, "e")->from_env, 0);
    const pc_node *f = pc_node_get(r, "f");
    cr_assert_eq(f->from_env, 0);
    cr_assert_eq(f->vals[0]->from_env, 0);
    cr_assert_eq(f->vals[1]->from_env, 1);
    cr_assert_eq(pc_node_get(pc_node_get(r, "g"), "k")->from_env, 0);
    cr_assert_eq(pc_node_get(r, "hello-key")->from_env, 0);
    size_t last = r->n - 1;
    cr_assert_str_eq(r->keys[last]->value, "hello-key");
    cr_assert_eq(r->keys[last]->from_env, 1);
    cr_assert_eq(r->keys[0]->from_env, 0);
    done(r);
}

Test(node, env_unset_and_malformed)
{
    unsetenv("PC_T_NODE_UNSET");
    pc_node *r = load("a: x\n"
                      "b: ${PC_T_NODE_UNSET}\n"
                      "c: ${oops\n"
                      "d: ${1BAD}\n"
                      "e: ${}\n");
    cr_assert_not_null(r); /* the tree survives; callers see the errors */
    EXPECT("t.yaml:2:4: environment variable 'PC_T_NODE_UNSET' is not set",
           "t.yaml:3:4: unterminated '${' (expected ${NAME})",
           "t.yaml:4:4: invalid environment variable reference '${1BAD}'",
           "t.yaml:5:4: invalid environment variable reference '${}'");
    /* A reader of a failed scalar adds no second error. */
    char *s = NULL;
    cr_assert_eq(pc_node_str(pc_node_get(r, "b"), "b", &s, &errs), -1);
    cr_assert_eq(errs.n, 4);
    done(r);
}

Test(node, duplicate_keys)
{
    pc_node *r = load("a: 1\nb: 2\na: 3\nm:\n  x: 1\n  x: 2\n  x: 3\n");
    cr_assert_not_null(r);
    EXPECT("t.yaml:6:3: duplicate key 'x' (first at line 5)",
           "t.yaml:7:3: duplicate key 'x' (first at line 5)",
           "t.yaml:3:1: duplicate key 'a' (first at line 1)");
    cr_assert_eq(r->n, 3);
    cr_assert_str_eq(pc_node_get(r, "a")->value, "1"); /* first one kept */
    cr_assert_eq(pc_node_get(r, "m")->n, 1);
    done(r);
}

Test(node, anchors_aliases_tags_rejected)
{
    pc_node *r = load("a: &x 3\nb: *x\nc: !!str 4\n");
    EXPECT("t.yaml:1:4: YAML anchors are not supported ('&x')",
           "t.yaml:2:4: YAML aliases are not supported ('*x')",
           "t.yaml:3:4: YAML tags are not supported ('!!str')");
    done(r);
}

Test(node, multiple_documents)
{
    pc_node *r = load("a: 1\n---\nb: 2\n");
    cr_assert_null(r);
    EXPECT("t.yaml:2:1: multiple YAML documents are not supported");
    done(r);
}

Test(node, syntax_errors_have_positions)
{
    pc_node *r = load("a: 1\n  b: 2\n");
    cr_assert_null(r);
    EXPECT("t.yaml:2:4: invalid YAML: mapping values are not allowed in this "
           "context");
    done(r);
    r = load("key: \"unterminated\n");
    cr_assert_null(r);
    EXPECT("t.yaml:2:1: invalid YAML: found unexpected end of stream (while "
           "scanning a quoted scalar at line 1, column 6)");
    done(r);
    r = load("a: \"\xff\"\n");
    cr_assert_null(r);
    EXPECT("t.yaml:1:5: invalid YAML: invalid leading UTF-8 octet");
    done(r);
}

Test(node, nul_and_deep_nesting)
{
    pc_node *r = load("a: \"x\\0y\"\n");
    EXPECT("t.yaml:1:4: NUL character in a value");
    done(r);
    char deep[200];
    memset(deep, '[', 100);
    deep[100] = '\0';
    r = load(deep);
    cr_assert_null(r);
    EXPECT("t.yaml:1:66: nesting deeper than 64 levels");
    done(r);
}

Test(node, empty_document_is_null)
{
    pc_node *r = load("");
    cr_assert_not_null(r);
    cr_assert_eq(errs.n, 0);
    cr_assert_eq(r->kind, PC_NODE_SCALAR);
    cr_assert(r->is_null);
    cr_assert_eq(r->line, 1);
    cr_assert_eq(r->col, 1);
    done(r);
}

Test(node, load_file_and_missing_file)
{
    char *path = write_tmp("x: [1, 2]\n");
    pc_errors_init(&errs, path);
    pc_node *r = pc_node_load_file(path, &errs);
    cr_assert_not_null(r);
    cr_assert_eq(pc_node_get(r, "x")->n, 2);
    pc_node_free(r);
    unlink(path);
    r = pc_node_load_file(path, &errs);
    cr_assert_null(r);
    char want[256];
    snprintf(want, sizeof want,
             "%s:1:1: cannot open: No such file or directory", path);
    cr_assert_eq(errs.n, 1);
    cr_assert_str_eq(errs.msgs[0], want);
    pc_errors_free(&errs);
    free(path);

    pc_errors_init(&errs, "/tmp");
    cr_assert_null(pc_node_load_file("/tmp", &errs));
    EXPECT("/tmp:1:1: cannot open: Is a directory");
    pc_errors_free(&errs);
}

Test(node, errors_add_formats)
{
    pc_errors_init(&errs, "f.yaml");
    pc_errors_add(&errs, NULL, "plain %d", 7);
    pc_errors_add_at(&errs, 12, 34, "at %s", "here");
    EXPECT("f.yaml:1:1: plain 7", "f.yaml:12:34: at here");
    pc_errors_free(&errs);
    cr_assert_eq(errs.n, 0);
}

Test(node, fifo_is_not_read)
{
    /* Opening a FIFO for reading blocks until a writer comes: -t hung. */
    char path[] = "/tmp/pc_node_fifo_XXXXXX";
    cr_assert_not_null(mkdtemp(path));
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/p.yaml", path);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    pc_errors_init(&errs, fifo);
    cr_assert_null(pc_node_load_file(fifo, &errs));
    char want[128];
    snprintf(want, sizeof want, "%s: not a regular file", fifo);
    cr_assert_eq(errs.n, 1);
    cr_assert_str_eq(errs.msgs[0], want);
    pc_errors_free(&errs);
    pc_errors_init(&errs, "/dev/null");
    cr_assert_null(pc_node_load_file("/dev/null", &errs));
    EXPECT("/dev/null: not a regular file");
    pc_errors_free(&errs);
    unlink(fifo);
    rmdir(path);
}

Test(node, errors_are_one_line_of_plain_text)
{
    /* A value can hold any character through a double-quoted escape, and
     * the file name any byte: neither may forge a line or a terminal escape. */
    pc_errors_init(&errs, "a\nb.yaml");
    pc_errors_add_at(&errs, 2, 3, "got '%s'", "\x1b[31mx\r\nF:1:1: y\tz\x7f");
    pc_errors_add_file(&errs, "bad \x01");
    EXPECT("a\\nb.yaml:2:3: got '\\e[31mx\\r\\nF:1:1: y\\tz\\x7f'",
           "a\\nb.yaml: bad \\x01");
    pc_errors_free(&errs);
    pc_node *r = load("k: \"\\e[2J\\x9b\\u00e9\\N\"\n");
    pc_node *k = pc_node_get(r, "k");
    uint64_t v;
    cr_assert_eq(pc_node_uint(k, "k", 0, 1, &v, &errs), -1);
    /* U+009B (C1 CSI) and U+0085 (NEL) escaped byte by byte; é kept. */
    EXPECT("t.yaml:1:4: expected an integer for 'k', got "
           "'\\e[2J\\xc2\\x9b\xc3\xa9\\xc2\\x85'");
    done(r);
}

Test(node, check_keys)
{
    static const char *const allowed[] = {"address", "tls", NULL};
    pc_node *r = load("adress: x\ntls: {}\nzzz: 1\n");
    cr_assert_eq(pc_node_check_keys(r, allowed, "listen entry", &errs), 2);
    EXPECT("t.yaml:1:1: unknown key 'adress' in listen entry (did you mean "
           "'address'?)",
           "t.yaml:3:1: unknown key 'zzz' in listen entry");
    done(r);
    r = load("tsl: 1\n");
    cr_assert_eq(pc_node_check_keys(r, allowed, NULL, &errs), 1);
    EXPECT("t.yaml:1:1: unknown key 'tsl' (did you mean 'tls'?)");
    done(r);
}

Test(node, str_and_bool_readers)
{
    pc_node *r = load("s: text\nn: 42\nnull: ~\nm: {a: 1}\n"
                      "t: true\nf: False\nq: 'true'\nbad: yes\n");
    char *s = NULL;
    int b = -1;
    cr_assert_eq(pc_node_str(pc_node_get(r, "s"), "s", &s, &errs), 0);
    cr_assert_str_eq(s, "text");
    free(s);
    cr_assert_eq(pc_node_str(pc_node_get(r, "n"), "n", &s, &errs), 0);
    cr_assert_str_eq(s, "42");
    free(s);
    cr_assert_eq(pc_node_bool(pc_node_get(r, "t"), "t", &b, &errs), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(pc_node_bool(pc_node_get(r, "f"), "f", &b, &errs), 0);
    cr_assert_eq(b, 0);
    cr_assert_eq(pc_node_bool(pc_node_get(r, "q"), "q", &b, &errs), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(errs.n, 0);
    cr_assert_eq(pc_node_str(pc_node_get(r, "null"), "x", &s, &errs), -1);
    cr_assert_eq(pc_node_str(pc_node_get(r, "m"), "m", &s, &errs), -1);
    cr_assert_eq(pc_node_bool(pc_node_get(r, "bad"), "bad", &b, &errs), -1);
    EXPECT("t.yaml:3:7: expected a string for 'x', got null",
           "t.yaml:4:4: expected a string for 'm', got a mapping",
           "t.yaml:8:6: expected true or false for 'bad', got 'yes'");
    done(r);
}

Test(node, uint_reader)
{
    pc_node *r = load("a: 80\nb: 0\nc: 65536\nd: -1\ne: 1.5\nf: "
                      "99999999999999999999999\ng: '8080'\nh: [1]\n");
    uint64_t v = 0;
    cr_assert_eq(pc_node_uint(pc_node_get(r, "a"), "a", 1, 65535, &v, &errs),
                 0);
    cr_assert_eq(v, 80);
    cr_assert_eq(pc_node_uint(pc_node_get(r, "g"), "g", 1, 65535, &v, &errs),
                 0);
    cr_assert_eq(v, 8080);
    const char *bad[] = {"b", "c", "d", "e", "f", "h"};
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(
            pc_node_uint(pc_node_get(r, bad[i]), bad[i], 1, 65535, &v, &errs),
            -1);
    EXPECT("t.yaml:2:4: value 0 for 'b' out of range 1..65535",
           "t.yaml:3:4: value 65536 for 'c' out of range 1..65535",
           "t.yaml:4:4: expected an integer for 'd', got '-1'",
           "t.yaml:5:4: expected an integer for 'e', got '1.5'",
           "t.yaml:6:4: value 99999999999999999999999 for 'f' out of range "
           "1..65535",
           "t.yaml:8:4: expected an integer for 'h', got a list");
    done(r);
}

Test(node, duration_and_size_readers)
{
    pc_node *r = load("d: 1m30s\nz: 250ms\nbd: 10\nbu: 5x\n"
                      "s: 16k\nn: 1024\nbs: 1kb\nseq: []\n");
    uint64_t v = 0;
    cr_assert_eq(pc_node_duration(pc_node_get(r, "d"), "d", &v, &errs), 0);
    cr_assert_eq(v, 90000);
    cr_assert_eq(pc_node_duration(pc_node_get(r, "z"), "z", &v, &errs), 0);
    cr_assert_eq(v, 250);
    cr_assert_eq(pc_node_size(pc_node_get(r, "s"), "s", &v, &errs), 0);
    cr_assert_eq(v, 16384);
    cr_assert_eq(pc_node_size(pc_node_get(r, "n"), "n", &v, &errs), 0);
    cr_assert_eq(v, 1024);
    cr_assert_eq(errs.n, 0);
    cr_assert_eq(pc_node_duration(pc_node_get(r, "bd"), "bd", &v, &errs), -1);
    cr_assert_eq(pc_node_duration(pc_node_get(r, "bu"), "bu", &v, &errs), -1);
    cr_assert_eq(pc_node_size(pc_node_get(r, "bs"), "bs", &v, &errs), -1);
    cr_assert_eq(pc_node_size(pc_node_get(r, "seq"), "seq", &v, &errs), -1);
    cr_assert_eq(errs.n, 4);
    cr_expect_str_eq(errs.msgs[0], "t.yaml:3:5: invalid duration '10' for "
                                   "'bd': missing unit (ms, s, m, h or d), "
                                   "e.g. 10s");
    cr_expect_str_eq(errs.msgs[1], "t.yaml:4:5: invalid duration '5x' for "
                                   "'bu': unknown unit 'x'");
    cr_expect_str_eq(errs.msgs[2], "t.yaml:7:5: invalid size '1kb' for 'bs': "
                                   "unknown unit 'kb' (use k, m or g)");
    cr_expect_str_eq(errs.msgs[3],
                     "t.yaml:8:6: expected a size like 16k for 'seq', got a "
                     "list");
    done(r);
}

Test(node, expect_map_and_seq)
{
    pc_node *r = load("m: {a: 1}\ns: [1]\nx: 3\n");
    cr_assert_eq(pc_node_expect_map(pc_node_get(r, "m"), "m", &errs), 0);
    cr_assert_eq(pc_node_expect_seq(pc_node_get(r, "s"), "s", &errs), 0);
    cr_assert_eq(pc_node_expect_map(pc_node_get(r, "s"), "s", &errs), -1);
    cr_assert_eq(pc_node_expect_seq(pc_node_get(r, "x"), "x", &errs), -1);
    EXPECT("t.yaml:2:4: expected a mapping for 's', got a list",
           "t.yaml:3:4: expected a list for 'x', got a scalar");
    done(r);
}
