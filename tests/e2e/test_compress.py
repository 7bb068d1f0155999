"""Response compression end to end (CONTRACT §2 route `compress`, §3 step 10
and "Compression"; RFC 9110 §8.4, §8.8.3, §12.5.3, §7.7; RFC 8878): the
coding the client rates highest (ties zstd > br > gzip), every variant
decoded and compared byte for byte with the upstream's body, Vary,
weak ETags, pass-through of encoded responses, min_bytes, no-transform,
HEAD and 304, chunked upstream bodies, Accept-Encoding forwarded
unchanged, and a large body streamed with bounded memory."""

import gzip
import shutil
import subprocess
import zlib

import pytest

import helpers
from helpers import RawConn, build_request, request, run_cli
from upstream import doc_bytes


@pytest.fixture(scope="module")
def cz(tmp_path_factory):
    env = helpers.Env(tmp_path_factory.mktemp("compress"))
    up = env.upstream("a")
    port, admin = helpers.free_port(), helpers.free_port()
    routes = [
        {"name": "json", "match": {"path": "/z"}, "upstream": "a",
         "compress": {"types": ["application/json", "text/*"], "min_bytes": 1024}},
        {"name": "deflt", "match": {"path": "/d"}, "upstream": "a", "compress": {}},
        {"name": "plain", "match": {"path": "/p"}, "upstream": "a"},
    ]
    cfg = helpers.base_config(port, admin, {"a": helpers.upstream_conf(up)}, routes,
                              workers=2, limits={"max_body_bytes": "64m"})
    gw = env.gateway(cfg)
    gw.up = up
    yield gw
    env.close()


def decode(enc, data):
    if enc == "gzip":
        return gzip.decompress(data)
    tool = {"br": ["brotli", "-d", "-c"], "zstd": ["zstd", "-d", "-c", "-q"]}[enc]
    if not shutil.which(tool[0]):
        pytest.skip("%s command-line tool not installed" % tool[0])
    out = subprocess.run(tool, input=data, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def get(gw, target, ae=None, method="GET", headers=None):
    h = list((headers or {}).items())
    if ae is not None:
        h.append(("Accept-Encoding", ae))
    return request(gw.port, method, target, headers=h)


@pytest.mark.parametrize("enc", ["gzip", "br", "zstd"])
@pytest.mark.parametrize("n", [1024, 20000, 300000])
def test_each_coding_decodes_to_the_upstream_bytes(cz, enc, n):
    r = get(cz, "/z/doc/%d" % n, ae=enc)
    assert r.status == 200
    assert r.header("Content-Encoding") == enc
    assert r.header("Content-Length") is None
    assert (r.header("Transfer-Encoding") or "").lower() == "chunked"
    assert "accept-encoding" in (r.header("Vary") or "").lower()
    assert r.header("Accept-Ranges") is None
    assert len(r.body) < n  # it is compressible text
    assert decode(enc, r.body) == doc_bytes(n)


@pytest.mark.parametrize("ae,want", [
    ("gzip, br, zstd", "zstd"),                 # ties: zstd > br > gzip
    ("gzip, br", "br"),
    ("gzip", "gzip"),
    ("x-gzip", "gzip"),
    ("GZIP;Q=1", "gzip"),
    ("gzip;q=1.0, br;q=0.5, zstd;q=0.2", "gzip"),
    ("gzip;q=0.3, br;q=0.8", "br"),
    ("zstd;q=0, br;q=0, gzip", "gzip"),
    ("*", "zstd"),
    ("*;q=0.5, gzip;q=0.9", "gzip"),
    ("*, zstd;q=0", "br"),
    ("identity", None),
    ("", None),
    ("deflate, compress", None),
    ("gzip;q=0", None),
    ("gzip;q=0.5, identity", None),              # identity rated higher
    ("gzip;q=2, br", "br"),                      # bad q-value: element ignored
    ("gzip;q=0.0001, br;q=0.001", "br"),         # four decimals: ignored
    ("gzip, identity;q=0", "gzip"),
    ("identity;q=0", None),                      # no coding accepted: identity anyway
])
def test_accept_encoding_table(cz, ae, want):
    r = get(cz, "/z/doc/5000", ae=ae)
    assert r.status == 200
    assert r.header("Content-Encoding") == want
    assert "accept-encoding" in (r.header("Vary") or "").lower()
    body = decode(want, r.body) if want else r.body
    assert body == doc_bytes(5000)


def test_no_accept_encoding_is_identity_with_vary(cz):
    r = get(cz, "/z/doc/5000")
    assert r.header("Content-Encoding") is None
    assert r.header("Content-Length") == "5000"
    assert r.header("Vary") == "Accept-Encoding"
    assert r.body == doc_bytes(5000)


def test_repeated_accept_encoding_fields_combine(cz):
    with RawConn(cz.port) as c:
        c.send(build_request("GET", "/z/doc/5000",
                             [("Accept-Encoding", "gzip;q=0.1"),
                              ("Accept-Encoding", "br;q=0.9")]))
        r = c.read_response()
    assert r.header("Content-Encoding") == "br"


def test_accept_encoding_forwarded_unchanged(cz):
    mark = cz.up.mark()
    get(cz, "/z/doc/5000", ae="br;q=0.5, gzip")
    h = helpers.req_headers(cz.up.since(mark, "req")[-1])
    assert h["accept-encoding"] == ["br;q=0.5, gzip"]


def test_strong_etag_becomes_weak_weak_stays(cz):
    r = get(cz, '/z/doc/5000?etag="v1"', ae="gzip")
    assert r.header("Content-Encoding") == "gzip"
    assert r.header("ETag") == 'W/"v1"'
    r = get(cz, '/z/doc/5000?etag=W/"v2"', ae="gzip")
    assert r.header("ETag") == 'W/"v2"'
    r = get(cz, '/z/doc/5000?etag="v1"')  # not compressed: untouched
    assert r.header("ETag") == '"v1"'


def test_304_gets_the_weak_etag_and_vary(cz):
    r = get(cz, '/z/doc/5000?status=304&etag="v1"', ae="gzip")
    assert r.status == 304
    assert r.header("ETag") == 'W/"v1"'
    assert r.header("Content-Encoding") is None
    assert "accept-encoding" in (r.header("Vary") or "").lower()
    assert r.body == b""


def test_already_encoded_passes_through(cz):
    r = get(cz, "/z/doc/5000?ce=identity-ish", ae="gzip")
    assert r.header("Content-Encoding") == "identity-ish"
    assert r.header("Content-Length") == "5000"
    assert r.body == doc_bytes(5000)


def test_below_min_bytes_stays_identity(cz):
    r = get(cz, "/z/doc/1023", ae="gzip")
    assert r.header("Content-Encoding") is None
    assert r.header("Content-Length") == "1023"
    assert r.header("Vary") == "Accept-Encoding"


def test_unknown_length_is_compressed_whatever_its_size(cz):
    r = get(cz, "/z/doc/300?chunked=1", ae="gzip")
    assert r.header("Content-Encoding") == "gzip"
    assert gzip.decompress(r.body) == doc_bytes(300)
    r = get(cz, "/z/doc/250000?chunked=1", ae="zstd")
    assert decode("zstd", r.body) == doc_bytes(250000)


def test_type_not_listed_is_untouched_without_vary(cz):
    r = get(cz, "/z/doc/5000?ct=image/png", ae="gzip")
    assert r.header("Content-Encoding") is None
    assert r.header("Vary") is None
    assert r.body == doc_bytes(5000)


def test_type_wildcard_and_parameters(cz):
    r = get(cz, "/z/doc/5000?ct=Text/HTML;%20charset=utf-8", ae="gzip")
    assert r.header("Content-Encoding") == "gzip"
    r = get(cz, "/z/doc/5000?ct=textual/html", ae="gzip")
    assert r.header("Content-Encoding") is None


def test_no_transform_is_respected(cz):
    r = get(cz, "/z/doc/5000?cc=public,%20no-transform", ae="gzip")
    assert r.header("Content-Encoding") is None
    assert r.body == doc_bytes(5000)


def test_existing_vary_is_extended_once(cz):
    r = get(cz, "/z/doc/5000?vary=Origin", ae="gzip")
    assert [v.strip().lower() for v in ",".join(r.all("Vary")).split(",")] == \
        ["origin", "accept-encoding"]
    r = get(cz, "/z/doc/5000?vary=accept-encoding", ae="gzip")
    assert ",".join(r.all("Vary")).lower() == "accept-encoding"


def test_head_has_the_get_headers_and_no_body(cz):
    r = get(cz, "/z/doc/5000", ae="gzip", method="HEAD")
    assert r.status == 200
    assert r.header("Content-Encoding") == "gzip"
    assert r.header("Content-Length") is None
    assert r.body == b""
    # the connection is still in step: a GET after a HEAD on it
    with RawConn(cz.port) as c:
        c.send(build_request("HEAD", "/z/doc/5000", [("Accept-Encoding", "gzip")]) +
               build_request("GET", "/z/doc/5000", [("Accept-Encoding", "gzip")]))
        assert c.read_response("HEAD").body == b""
        assert gzip.decompress(c.read_response().body) == doc_bytes(5000)


def test_errors_and_partial_content_are_not_compressed(cz):
    r = get(cz, "/z/doc/5000?status=206", ae="gzip")
    assert r.status == 206 and r.header("Content-Encoding") is None
    r = get(cz, "/z/nothing/status/404", ae="gzip")
    assert r.header("Content-Encoding") is None  # 18 bytes < min_bytes
    r = get(cz, "/nowhere", ae="gzip")  # the gateway's own 404
    assert r.status == 404 and r.header("Content-Encoding") is None


def test_default_types_and_route_without_compress(cz):
    r = get(cz, "/d/doc/5000?ct=text/css", ae="br")
    assert r.header("Content-Encoding") == "br"
    assert decode("br", r.body) == doc_bytes(5000)
    r = get(cz, "/p/doc/5000", ae="br")
    assert r.header("Content-Encoding") is None and r.header("Vary") is None


def test_keep_alive_sequence_of_mixed_codings(cz):
    with RawConn(cz.port) as c:
        for i, enc in enumerate(["gzip", "br", "zstd", None, "gzip"] * 2):
            n = 2000 + 997 * i
            hs = [("Accept-Encoding", enc)] if enc else []
            c.send(build_request("GET", "/z/doc/%d" % n, hs))
            r = c.read_response()
            assert r.header("Content-Encoding") == enc
            assert (decode(enc, r.body) if enc else r.body) == doc_bytes(n)


def test_large_body_streams_compressed(cz):
    """64 MiB of text through gzip, read slowly: the gateway's memory stays
    bounded (it never buffers the whole response), and the bytes match."""
    n = 64 << 20
    with RawConn(cz.port, timeout=120) as c:
        c.send(build_request("GET", "/z/doc/%d" % n, [("Accept-Encoding", "gzip")]))
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        crc = [0, 0]

        def sink(data):
            out = d.decompress(data)
            crc[0] = zlib.crc32(out, crc[0])
            crc[1] += len(out)
        r = c.read_response(body_sink=sink)
        assert r.status == 200 and r.header("Content-Encoding") == "gzip"
    assert crc[1] == n
    assert crc[0] == zlib.crc32(doc_bytes(n))
    # ASan build: generous, but far below what buffering 64 MiB would take
    assert helpers.rss_kib(cz.pid) < 400 * 1024


def test_config_errors(tmp_path):
    port, admin = helpers.free_port(), helpers.free_port()
    bad = [
        ({"types": []}, "at least one"),
        ({"types": ["json"]}, "invalid media type 'json'"),
        ({"types": ["text/h*"]}, "invalid media type"),
        ({"min_bytes": "lots"}, "min_bytes"),
        ({"level": 9}, "unknown key 'level'"),
        ("yes", "expected a mapping"),
    ]
    for block, msg in bad:
        cfg = helpers.base_config(port, admin, {"a": {"targets": [{"url": "http://127.0.0.1:9"}]}},
                                  [{"match": {"path": "/"}, "upstream": "a", "compress": block}])
        p = tmp_path / "c.yaml"
        p.write_text(helpers.to_yaml(cfg))
        out = run_cli("-t", "-c", str(p))
        assert out.returncode != 0, block
        assert msg in out.stderr, (block, out.stderr)
        assert ":" in out.stderr.split("\n")[0]
