"""docs/configuration.md is the one reference for configuration keys
(issue 12): for every block of the file, the keys the loader accepts are
exactly the keys its table documents; and the error-code table of
docs/operations.md is exactly the one the gateway answers with.

What the loader accepts is asked of the binary, not guessed: every key name
that appears in a key list of the loader's source (src/config, src/chain),
every documented key and a made-up key are all written into one block of an
otherwise ordinary file, and `portcullis -t` reports the ones it does not
accept ("unknown key 'x'", "'x' is not supported by this build yet"). A
key list the scan misses still shows up here as soon as any block's
documentation or source names it."""

import copy
import os
import re

import pytest

import helpers
from helpers import run_cli

ROOT = helpers.ROOT
CONF_MD = os.path.join(ROOT, "docs/configuration.md")
OPS_MD = os.path.join(ROOT, "docs/operations.md")
BOGUS = "zz_not_a_key"


def read(path):
    with open(path) as f:
        return f.read()


def doc_tables():
    """{heading: [[keys of the first table], [keys of the second], ...]} for
    the tables whose first column is a key (`key`, `provider key`, ...), and
    {heading: section text}."""
    tables, text = {}, {}
    heading, in_table = None, False
    for line in read(CONF_MD).splitlines():
        m = re.match(r"^#{2,3} (.+)$", line)
        if m:
            heading, in_table = m.group(1).strip(), False
            text[heading] = ""
            continue
        if heading is None:
            continue
        text[heading] += line + "\n"
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not in_table:
            if cells[0].endswith("key"):
                tables.setdefault(heading, []).append([])
                in_table = True
            continue
        if set(cells[0]) <= set("-: "):
            continue
        m = re.match(r"^`([a-z_]+)`$", cells[0])
        assert m, "%s: a key table row without a `key`: %r" % (heading, line)
        tables[heading][-1].append(m.group(1))
    return tables, text


def source_key_names():
    """Every string in a `keys[]` / `later[]` list of the loader's sources."""
    names = set()
    for d in ("src/config", "src/chain"):
        for f in sorted(os.listdir(os.path.join(ROOT, d))):
            if not f.endswith(".c"):
                continue
            src = read(os.path.join(ROOT, d, f))
            for m in re.finditer(r"const char \*const (?:keys|later)\[\] = \{(.*?)\};", src,
                                 re.S):
                names.update(re.findall(r'"([a-z_]+)"', m.group(1)))
    return names


def base():
    return {
        "listen": [{"address": "127.0.0.1:1"}],
        "upstreams": {"u": {"targets": [{"url": "http://127.0.0.1:1"}]}},
        "routes": [{"match": {"path": "/"}, "upstream": "u"}],
    }


def route(c):
    return c["routes"][0]


def upstream(c):
    return c["upstreams"]["u"]


def sub(parent, key, value):
    parent[key] = value
    return value


# block -> (documentation: (heading, table index) or (heading, None) for a
# block without a table, whose keys must appear in the section's text;
# function returning that block's mapping inside a config)
BLOCKS = {
    "top level": (("Top-level keys", 0), lambda c: c),
    "listen entry": (("listen", 0), lambda c: c["listen"][0]),
    "listen tls": (("listen", 1), lambda c: sub(c["listen"][0], "tls", {})),
    "tls certificate": (("listen", None),
                        lambda c: sub(sub(c["listen"][0], "tls", {}), "certificates", [{}])[0]),
    "admin": (("admin", 0), lambda c: sub(c, "admin", {})),
    "limits": (("limits", 0), lambda c: sub(c, "limits", {})),
    "log": (("log", 0), lambda c: sub(c, "log", {})),
    "upstream": (("upstreams", 0), upstream),
    "target": (("upstreams", 1), lambda c: upstream(c)["targets"][0]),
    "health_check": (("health_check", 0), lambda c: sub(upstream(c), "health_check", {})),
    "circuit_breaker": (("circuit_breaker", 0),
                        lambda c: sub(upstream(c), "circuit_breaker", {})),
    "route": (("routes", 0), route),
    "match": (("match", 0), lambda c: route(c)["match"]),
    "headers": (("headers", None), lambda c: sub(route(c), "headers", {})),
    "headers request": (("headers", None),
                        lambda c: sub(sub(route(c), "headers", {}), "request", {})),
    "global acl": (("acl", 0), lambda c: sub(c, "acl", {})),
    "route acl": (("acl", 0), lambda c: sub(route(c), "acl", {})),
    "global validate": (("validate", 0), lambda c: sub(c, "validate", {})),
    "route validate": (("validate", 0), lambda c: sub(route(c), "validate", {})),
    "global rate_limit": (("rate_limit", 0), lambda c: sub(c, "rate_limit", {})),
    "route rate_limit": (("rate_limit", 0), lambda c: sub(route(c), "rate_limit", {})),
    "redis": (("redis", 0), lambda c: sub(c, "redis", {})),
    "jwt": (("jwt and auth", None), lambda c: sub(c, "jwt", {})),
    "jwt provider": (("jwt and auth", 0),
                     lambda c: sub(sub(c, "jwt", {}), "providers", [{}])[0]),
    "route auth": (("jwt and auth", 1), lambda c: sub(route(c), "auth", {})),
    "route verify_signature": (("verify_signature", 0),
                               lambda c: sub(route(c), "verify_signature", {})),
    "route compress": (("compress", 0), lambda c: sub(route(c), "compress", {})),
    "global cache": (("cache", 0), lambda c: sub(c, "cache", {})),
    "route cache": (("cache", 1), lambda c: sub(route(c), "cache", {})),
}

REJECTED_RE = re.compile(r"unknown key '([^']+)'|'([^']+)' is not supported by this build yet")


@pytest.fixture(scope="module")
def docs():
    return doc_tables()


@pytest.fixture(scope="module")
def candidates(docs):
    names = source_key_names()
    assert {"workers", "listen", "routes", "rate", "ttl", "url"} <= names, \
        "the scan of the loader's key lists found too little: %r" % sorted(names)
    for tabs in docs[0].values():
        for t in tabs:
            names.update(t)
    return names


def accepted_keys(tmp_path, block, candidates):
    cfg = base()
    m = BLOCKS[block][1](cfg)
    present = set(m)
    for k in sorted(candidates | {BOGUS}):
        if k not in present:
            m[k] = None
    path = str(tmp_path / ("%s.yaml" % block.replace(" ", "_")))
    with open(path, "w") as f:
        f.write(helpers.to_yaml(cfg))
    r = run_cli("-t", "-c", path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert not helpers.SANITIZER_RE.search(r.stderr), r.stderr
    rejected = {a or b for a, b in REJECTED_RE.findall(r.stderr)}
    # The block was really read: the made-up key was refused in it.
    assert BOGUS in rejected, "%s: the loader did not read the block:\n%s" % (block, r.stderr)
    return (present | candidates) - rejected, r.stderr


def test_docs_tables_are_found(docs):
    tables, _ = docs
    for block, ((heading, idx), _) in BLOCKS.items():
        if idx is not None:
            assert heading in tables and len(tables[heading]) > idx, \
                "docs/configuration.md: no key table %d under '%s'" % (idx, heading)
            assert tables[heading][idx], heading


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_accepted_keys_are_exactly_the_documented_ones(block, docs, candidates, tmp_path):
    tables, text = docs
    heading, idx = BLOCKS[block][0]
    accepted, stderr = accepted_keys(tmp_path, block, candidates)
    if idx is None:
        missing = sorted(k for k in accepted
                         if not re.search(r"`(?:[a-z_]+\.)*%s`|\b%s:" % (k, k), text[heading]))
        assert not missing, ("docs/configuration.md '%s' does not mention the %s keys %r" %
                             (heading, block, missing))
        return
    documented = set(tables[heading][idx])
    undocumented = sorted(accepted - documented)
    refused = sorted(documented - accepted)
    assert not undocumented and not refused, (
        "%s (docs/configuration.md '%s', table %d):\n"
        "  accepted by the loader, not documented: %r\n"
        "  documented, refused by the loader: %r\n%s" % (
            block, heading, idx + 1, undocumented, refused,
            "\n".join(l for l in stderr.splitlines() if any(k in l for k in refused))))


def test_every_source_key_name_is_documented_somewhere(candidates, docs):
    """Catches a key list for a block that BLOCKS does not know yet."""
    tables, text = docs
    everything = "\n".join(text.values())
    missing = sorted(k for k in source_key_names()
                     if not re.search(r"`(?:[a-z_]+\.)*%s`|\b%s:" % (k, k), everything))
    # `webhooks` is documented as not supported.
    assert not missing, "key names in the loader's sources missing from the docs: %r" % missing


# --------------------------------------------------------------------------
# error codes


def source_error_codes():
    src = read(os.path.join(ROOT, "src/http/errors.c"))
    codes = {(int(s), c) for s, c in re.findall(r'\{(\d{3}),\s*"([a-z_]+)"', src)}
    codes.discard((200, "none"))
    assert len(codes) >= 16, codes
    return codes


def doc_error_codes():
    text = read(OPS_MD)
    sec = text.split("## Error responses", 1)
    assert len(sec) == 2, "docs/operations.md has no 'Error responses' section"
    body = sec[1].split("\n## ", 1)[0]
    return {(int(s), c) for s, c in re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", body, re.M)}


def test_error_code_table_matches_the_gateway():
    src, doc = source_error_codes(), doc_error_codes()
    assert src - doc == set(), "error codes the gateway answers, not documented: %r" % (
        sorted(src - doc))
    assert doc - src == set(), "error codes documented, unknown to the gateway: %r" % (
        sorted(doc - src))

