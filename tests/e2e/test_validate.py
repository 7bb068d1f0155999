"""Request validation end to end (CONTRACT §2 validate and "Validation
details", §3 step 2, §4 400 invalid_body / 413 / 415; docs/configuration.md
"validate", docs/json-schema.md): global block vs a route's own (which
replaces it), content_types, max_body_bytes before and while reading,
json_schema with the failing JSON pointer, the 413 > 415 > 400 order, and
schema errors at load. Every refusal is checked from the upstream's side
too: nothing complete arrives there."""

import json
import os

import pytest

import helpers
from helpers import RawConn, Closed, assert_error, build_request, req_headers, request, run_cli

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["id", "items"],
    "properties": {
        "id": {"type": "string", "pattern": "^ord_[0-9a-f]{8}$"},
        "items": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/item"}},
        "note": {"type": "string", "maxLength": 20},
    },
    "additionalProperties": False,
    "$defs": {
        "item": {"type": "object", "required": ["sku", "qty"],
                 "properties": {"sku": {"type": "string"},
                                "qty": {"type": "integer", "minimum": 1}}},
    },
}

# Valid, and written so that any re-serialisation would change its bytes:
# odd spacing, a \u escape, a raw UTF-8 character, 1.0 as an integer.
VALID = (b'{ "id" :"ord_0123abcd",\n\t"items":[ {"sku":"caf\\u00e9","qty":1.0},'
         b'{"qty": 2, "sku": "\xc3\xa9t\xc3\xa9"} ] ,"note":"x"}  ')


@pytest.fixture(scope="module")
def va(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("validate"))
    os.makedirs(os.path.join(d, "schemas"))
    with open(os.path.join(d, "schemas", "order.json"), "w") as f:
        json.dump(SCHEMA, f, indent=2)
    env = helpers.Env(d)
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [
        {"name": "g", "match": {"path": "/g"}, "upstream": "a"},
        {"name": "r", "match": {"path": "/r"}, "upstream": "a",
         "validate": {"content_types": ["text/plain", "application/*"],
                      "max_body_bytes": "4k"}},
        {"name": "none", "match": {"path": "/none"}, "upstream": "a", "validate": {}},
        {"name": "schema", "match": {"path": "/schema"}, "upstream": "a",
         "validate": {"content_types": ["application/json"], "max_body_bytes": "2k",
                      "json_schema": "schemas/order.json"}},
        {"name": "so", "match": {"path": "/so"}, "upstream": "a",
         "validate": {"json_schema": os.path.join(d, "schemas", "order.json")}},
    ]
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes,
                              validate={"content_types": ["application/json"],
                                        "max_body_bytes": "1k"})
    gw = env.gateway(cfg)
    ns = type("VA", (), {})()
    ns.gw, ns.up, ns.port, ns.cfg, ns.dir = gw, up, port, cfg, d
    yield ns
    env.close()


def send(va, method, path, body=None, ctype=None, headers=()):
    """(response, complete upstream requests it caused)."""
    hdrs = list(headers)
    if ctype is not None:
        hdrs.append(("Content-Type", ctype))
    mark = va.up.mark()
    r = request(va.port, method, path, headers=hdrs, body=body)
    return r, va.up.since(mark, "req")


def forwarded(r, evs, body=b""):
    """The request reached the upstream once with exactly this body, framed
    by Content-Length (or without a body)."""
    assert r.status == 200, r
    assert len(evs) == 1, evs
    ev = evs[0]
    assert ev["body"].encode("latin-1") == body, (ev["body"], body)
    h = req_headers(ev)
    assert not ev["chunked"] and "transfer-encoding" not in h, h
    if body:
        assert h["content-length"] == [str(len(body))], h
    return h


def refused(r, evs, status, code):
    doc = assert_error(r, status, code)
    assert evs == [], "a refused request reached the upstream: %r" % evs
    return doc


def chunked_head(path, ctype="application/json", extra=()):
    hdrs = [("Transfer-Encoding", "chunked")]
    if ctype:
        hdrs.append(("Content-Type", ctype))
    return build_request("POST", path, hdrs + list(extra))


def chunks(data, size):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


# ------------------------------------------------------------------ content_types


@pytest.mark.parametrize("ctype", ["application/json", "Application/JSON",
                                   "application/json; charset=utf-8",
                                   "APPLICATION/JSON;charset=UTF-8",
                                   "application/json ; boundary=x"])
def test_global_content_type_accepted(va, ctype):
    body = b'{"a": 1}'
    r, evs = send(va, "POST", "/g/ct", body, ctype)
    h = forwarded(r, evs, body)
    assert h["content-type"] == [ctype]


@pytest.mark.parametrize("ctype", ["text/plain", "application/jsonx", "text/json",
                                   "application/json-patch+json", "application"])
def test_global_content_type_refused(va, ctype):
    r, evs = send(va, "POST", "/g/ct", b'{"a": 1}', ctype)
    refused(r, evs, 415, "unsupported_media_type")


def test_body_without_content_type_415(va):
    r, evs = send(va, "POST", "/g/noct", b'{"a": 1}')
    refused(r, evs, 415, "unsupported_media_type")


def test_chunked_body_without_content_type_415(va):
    mark = va.up.mark()
    with RawConn(va.port) as c:
        c.send(chunked_head("/g/noct-chunked", ctype=None) + chunks(b'{"a": 1}', 4))
        r = c.read_response()
    refused(r, va.up.since(mark, "req"), 415, "unsupported_media_type")


def test_requests_without_body_pass(va):
    r, evs = send(va, "GET", "/g/get")
    forwarded(r, evs)
    r, evs = send(va, "DELETE", "/g/del", headers=[("Content-Length", "0")])
    forwarded(r, evs)
    r, evs = send(va, "POST", "/g/empty", b"")
    forwarded(r, evs)
    # the type only matters for a body: an empty one passes whatever it says
    r, evs = send(va, "POST", "/g/empty-ct", b"", "text/plain")
    forwarded(r, evs)


def test_route_block_replaces_global(va):
    # /r: text/plain and application/* accepted, up to 4k (the global block
    # would refuse both the type and the size)
    body = b"t" * 3000
    r, evs = send(va, "POST", "/r/a", body, "text/plain; charset=latin1")
    forwarded(r, evs, body)
    r, evs = send(va, "PUT", "/r/b", b"<x/>", "application/xml")
    forwarded(r, evs, b"<x/>")
    r, evs = send(va, "POST", "/r/c", b"<p>", "text/html")
    refused(r, evs, 415, "unsupported_media_type")
    r, evs = send(va, "POST", "/r/d", b"t" * 4097, "text/plain")
    refused(r, evs, 413, "payload_too_large")
    r, evs = send(va, "POST", "/r/e", b"t" * 4096, "text/plain")
    forwarded(r, evs, b"t" * 4096)


def test_empty_route_block_replaces_global(va):
    body = bytes(range(256)) * 12  # 3 KiB, no Content-Type
    r, evs = send(va, "POST", "/none/x", body)
    forwarded(r, evs, body)
    r, evs = send(va, "POST", "/none/y", body, "image/png")
    forwarded(r, evs, body)


# ------------------------------------------------------------------ max_body_bytes


def test_content_length_at_limit_passes(va):
    body = b'"' + b"x" * 1022 + b'"'
    assert len(body) == 1024
    r, evs = send(va, "POST", "/g/limit", body, "application/json")
    forwarded(r, evs, body)


def test_content_length_over_limit_413_before_body(va):
    """Only the head is sent: the 413 must come without waiting for the body."""
    mark = va.up.mark()
    with RawConn(va.port, timeout=5) as c:
        c.send(build_request("POST", "/g/big", [("Content-Type", "application/json"),
                                                ("Content-Length", "1025")]))
        r = c.read_response()
    refused(r, va.up.since(mark, "req"), 413, "payload_too_large")
    assert [e for e in va.up.since(mark) if e["ev"] == "partial"] == []


def test_content_length_over_limit_no_100_continue(va):
    mark = va.up.mark()
    with RawConn(va.port, timeout=5) as c:
        c.send(build_request("POST", "/g/expect", [("Content-Type", "application/json"),
                                                   ("Content-Length", "5000"),
                                                   ("Expect", "100-continue")]))
        r = c.read_response(final=False)
    refused(r, va.up.since(mark, "req"), 413, "payload_too_large")


def send_chunked_over(va, path, total, ctype="application/json"):
    """A chunked body of total bytes; returns the response or None when the
    gateway closed instead, and the upstream events it caused."""
    mark = va.up.mark()
    body = b"[" + b"1," * ((total - 3) // 2) + b"1]"
    resp = None
    with RawConn(va.port, timeout=5) as c:
        try:
            c.send(chunked_head(path, ctype))
            data = chunks(body, 256)
            for i in range(0, len(data), 700):
                c.send(data[i:i + 700])
        except OSError:
            pass
        try:
            resp = c.read_response()
        except (Closed, OSError):
            resp = None
    return resp, va.up.since(mark), len(body)


@pytest.mark.parametrize("path", ["/g/chunked-big", "/schema/chunked-big"])
def test_chunked_body_over_limit(va, path):
    resp, evs, n = send_chunked_over(va, path, 3000)
    assert n > 2048
    if resp is not None:
        assert_error(resp, 413, "payload_too_large")
    assert [e for e in evs if e["ev"] == "req"] == [], evs
    # the gateway still serves
    r, evs = send(va, "GET", "/g/after")
    forwarded(r, evs)


# ------------------------------------------------------------------ json_schema


def test_valid_body_forwarded_byte_for_byte(va):
    r, evs = send(va, "POST", "/schema/ok", VALID, "application/json")
    forwarded(r, evs, VALID)


def test_chunked_valid_body_forwarded_with_content_length(va):
    mark = va.up.mark()
    with RawConn(va.port) as c:
        c.send(chunked_head("/schema/chunked"))
        c.send(chunks(VALID, 7))
        r = c.read_response()
    forwarded(r, va.up.since(mark, "req"), VALID)


def test_chunked_invalid_body_refused(va):
    bad = VALID.replace(b'"qty": 2', b'"qty": 0')
    mark = va.up.mark()
    with RawConn(va.port) as c:
        c.send(chunked_head("/schema/chunked-bad") + chunks(bad, 10))
        r = c.read_response()
    doc = refused(r, va.up.since(mark, "req"), 400, "invalid_body")
    assert "'/items/1/qty'" in doc["message"], doc


def test_body_sent_in_pieces_validated(va):
    mark = va.up.mark()
    with RawConn(va.port) as c:
        c.send(build_request("POST", "/schema/pieces",
                             [("Content-Type", "application/json"),
                              ("Content-Length", str(len(VALID)))]))
        for i in range(0, len(VALID), 9):
            c.send(VALID[i:i + 9])
        r = c.read_response()
    forwarded(r, va.up.since(mark, "req"), VALID)


def order(**over):
    o = {"id": "ord_0123abcd", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}
    o.update(over)
    return json.dumps(o).encode()


@pytest.mark.parametrize("body,pointer", [
    (order(items=[{"sku": "a", "qty": 0}]), "/items/0/qty"),
    (order(items=[{"sku": "a", "qty": 1}, {"sku": 7, "qty": 1}]), "/items/1/sku"),
    (order(items=[{"sku": "a", "qty": 1}, {"sku": "b", "qty": 1.5}]), "/items/1/qty"),
    (order(items=[{"sku": "a", "qty": 1}, {"qty": 1}]), "/items/1"),
    (order(id="ord_XYZ"), "/id"),
    (order(note="n" * 21), "/note"),
    (order(items=[]), "/items"),
    (order(**{"a/b": 1}), "/a~1b"),
    (order(**{"x~y": 1}), "/x~0y"),
])
def test_schema_failure_names_pointer(va, body, pointer):
    r, evs = send(va, "POST", "/schema/bad", body, "application/json")
    doc = refused(r, evs, 400, "invalid_body")
    assert "'%s'" % pointer in doc["message"], (pointer, doc)


@pytest.mark.parametrize("body,word", [
    (b'{"id": "ord_0123abcd"}', "items"),
    (b'[1, 2]', "object"),
])
def test_schema_failure_at_root(va, body, word):
    r, evs = send(va, "POST", "/schema/root", body, "application/json")
    doc = refused(r, evs, 400, "invalid_body")
    assert word in doc["message"], doc


@pytest.mark.parametrize("body", [
    b'{"id": "ord_0123abcd", "items": [',
    b"not json at all",
    b'{"id": "ord_0123abcd", "id": "ord_0123abce", "items": [{"sku": "a", "qty": 1}]}',
    VALID + b"x",
    b"\xff\xfe{}",
    b"{'id': 'ord_0123abcd'}",
])
def test_not_json_400(va, body):
    r, evs = send(va, "POST", "/schema/notjson", body, "application/json")
    refused(r, evs, 400, "invalid_body")


def test_schema_route_without_content_types(va):
    r, evs = send(va, "POST", "/so/a", VALID, "text/plain")
    forwarded(r, evs, VALID)
    r, evs = send(va, "POST", "/so/b", order(id="nope"), "text/plain")
    refused(r, evs, 400, "invalid_body")
    r, evs = send(va, "GET", "/so/c")
    forwarded(r, evs)


def test_schema_route_without_body_passes(va):
    r, evs = send(va, "GET", "/schema/get")
    forwarded(r, evs)


@pytest.mark.parametrize("size,ctype,body_kind,status,code", [
    (3000, "text/plain", "bad", 413, "payload_too_large"),
    (3000, None, "bad", 413, "payload_too_large"),
    (3000, "application/json", "bad", 413, "payload_too_large"),
    (100, "text/plain", "bad", 415, "unsupported_media_type"),
    (100, None, "bad", 415, "unsupported_media_type"),
    (100, "text/plain", "good", 415, "unsupported_media_type"),
    (100, "application/json", "bad", 400, "invalid_body"),
])
def test_order_413_415_400(va, size, ctype, body_kind, status, code):
    if body_kind == "bad":
        body = (b"{not json" + b" " * size)[:size]
    else:
        body = order(note="n" * 5)
        body = body[:-1] + b" " * (size - len(body)) + b"}"
    assert len(body) == size
    r, evs = send(va, "POST", "/schema/order", body, ctype)
    refused(r, evs, status, code)


# ------------------------------------------------------------------ load errors


def check_schema_error(va, tmp_path, schema_text, needle):
    path = os.path.join(str(tmp_path), "bad_schema.json")
    with open(path, "w") as f:
        f.write(schema_text)
    cfg = dict(va.cfg)
    cfg["listen"] = [{"address": "127.0.0.1:%d" % helpers.free_port()}]
    cfg["admin"] = {"listen": "127.0.0.1:%d" % helpers.free_port()}
    cfg["routes"] = [{"name": "s", "match": {"path": "/s"}, "upstream": "a",
                      "validate": {"json_schema": "bad_schema.json"}}]
    text = helpers.to_yaml(cfg)
    conf = os.path.join(str(tmp_path), "bad.yaml")
    with open(conf, "w") as f:
        f.write(text)
    lines = text.splitlines()
    lineno = next(i + 1 for i, l in enumerate(lines) if "json_schema:" in l)
    cols = {lines[lineno - 1].index("json_schema") + 1, lines[lineno - 1].index('"bad') + 1}
    for args in (["-t", "-c", conf], ["-c", conf]):
        r = run_cli(*args)
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
        errs = [l for l in r.stderr.splitlines() if l.startswith(conf + ":")]
        assert errs, r.stderr
        hit = [l for l in errs if l.split(":")[1] == str(lineno)]
        assert hit, "no error at line %d: %r" % (lineno, errs)
        assert int(hit[0].split(":")[2]) in cols, (hit, cols)
        assert needle in hit[0], (needle, hit)
        assert "ok" not in r.stdout.split()


def test_schema_with_unsupported_keyword_is_config_error(va, tmp_path):
    schema = {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}}}
    check_schema_error(va, tmp_path, json.dumps(schema), "format")


def test_schema_with_draft07_items_array_is_config_error(va, tmp_path):
    check_schema_error(va, tmp_path, json.dumps({"items": [{"type": "string"}]}), "items")


def test_schema_not_json_is_config_error(va, tmp_path):
    check_schema_error(va, tmp_path, '{"type": "object",\n  "required": ["a"\n', "bad_schema.json")


def test_schema_file_missing_is_config_error(va, tmp_path):
    conf_dir = str(tmp_path)
    cfg = dict(va.cfg)
    cfg["routes"] = [{"name": "s", "match": {"path": "/s"}, "upstream": "a",
                      "validate": {"json_schema": "absent.json"}}]
    conf = os.path.join(conf_dir, "missing.yaml")
    with open(conf, "w") as f:
        f.write(helpers.to_yaml(cfg))
    r = run_cli("-t", "-c", conf)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert any(l.startswith(conf + ":") and "absent.json" in l
               for l in r.stderr.splitlines()), r.stderr
