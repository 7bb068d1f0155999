#!/usr/bin/env python3
"""bench/security_setup.py: the inputs and the table of bench/security.sh.

`prepare DIR` writes everything the security-stage benchmark needs into DIR:
an ES256 and an RS256 key with their JWK Set, an HS256 secret, one reused
token per provider (plus a tampered one for the rejection check), a 10,000-
entry deny list that never covers 127.0.0.1, a JSON Schema with a 1 KiB body
that matches it and one that does not, and the YAML fragments security.sh
appends to the configurations lib.sh writes (small.yaml: one route per
scenario; all.yaml: 1,000 routes, the deny list, one ES256 route).
Tokens and keys come from tests/e2e/jwt_util.py (stdlib + the openssl CLI),
so the benchmark signs exactly as the end-to-end tests do.

`report INDEX [TITLE_LINE...]` turns the raw wrk outputs listed in INDEX
(scenario, target, run, raw file; bench/run.sh's format) into the table with
each scenario's ratio to the bare route and the issue's targets, met or not.
It parses wrk with bench/report.py and never fills in a figure that a run
did not produce.
"""

import ipaddress
import json
import os
import random
import secrets
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(BENCH, "..", "tests", "e2e"))
sys.path.insert(0, BENCH)

import jwt_util as J  # noqa: E402
import report  # noqa: E402

ISSUER = "https://issuer.bench.invalid/"
AUDIENCE = "bench-api"
DENY_ENTRIES = 10000
ROUTES_ALL = 1000
BODY_BYTES = 1024
CLIENT = ipaddress.ip_address("127.0.0.1")

# Targets of issue 4 (req/s ratio to the bare route, at least).
TARGETS = {"hs256": 0.95, "es256": 0.95, "rs256": 0.95, "acl10k": 0.95,
           "all": 0.90}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["order_id", "customer", "currency", "items", "shipping"],
    "additionalProperties": False,
    "properties": {
        "order_id": {"type": "string", "pattern": "^ord_[0-9a-f]{8}$"},
        "customer": {
            "type": "object", "required": ["id", "email"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "pattern": "^cus_[0-9]{8}$"},
                "email": {"type": "string", "maxLength": 254,
                          "pattern": "^[^@ ]+@[^@ ]+$"},
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
            },
        },
        "currency": {"enum": ["EUR", "USD", "GBP", "CHF"]},
        "items": {"type": "array", "minItems": 1, "maxItems": 50,
                  "items": {"$ref": "#/$defs/item"}},
        "shipping": {"$ref": "#/$defs/address"},
        "express": {"type": "boolean"},
        "note": {"type": "string", "maxLength": 1000},
    },
    "$defs": {
        "item": {
            "type": "object", "required": ["sku", "qty", "unit_price"],
            "additionalProperties": False,
            "properties": {
                "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                "qty": {"type": "integer", "minimum": 1, "maximum": 1000},
                "unit_price": {"type": "number", "exclusiveMinimum": 0,
                               "multipleOf": 0.01},
                "tags": {"type": "array", "uniqueItems": True,
                         "items": {"type": "string", "maxLength": 20}},
            },
        },
        "address": {
            "type": "object", "required": ["street", "city", "zip", "country"],
            "properties": {
                "street": {"type": "string", "maxLength": 200},
                "city": {"type": "string", "maxLength": 100},
                "zip": {"type": "string", "pattern": "^[0-9A-Z -]{3,10}$"},
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
            },
        },
    },
}


def body(valid=True):
    """An order of exactly BODY_BYTES bytes (the note pads it)."""
    items = [{"sku": "ABC-%04d" % i, "qty": i + 1,
              "unit_price": round(3.5 + i * 1.25, 2),
              "tags": ["bench", "item%d" % i]} for i in range(6)]
    if not valid:
        items[4]["qty"] = 0  # below minimum: /items/4/qty
    order = {"order_id": "ord_0123abcd",
             "customer": {"id": "cus_00012345", "email": "ops@example.com",
                          "name": "Bench Customer"},
             "currency": "EUR", "items": items,
             "shipping": {"street": "1 Benchmark Road", "city": "Loopback",
                          "zip": "12345", "country": "DE"},
             "express": False, "note": ""}
    raw = json.dumps(order, separators=(",", ":"))
    pad = BODY_BYTES - len(raw.encode())
    if pad < 0:
        raise SystemExit("benchmark body is over %d bytes" % BODY_BYTES)
    order["note"] = "n" * pad
    raw = json.dumps(order, separators=(",", ":")).encode()
    assert len(raw) == BODY_BYTES
    return raw


def deny_list():
    """DENY_ENTRIES distinct networks, none containing 127.0.0.1. The
    sibling of 127.0.0.1's network at every prefix length from /9 to /32 is
    in the list, so the lookup for the benchmark's client walks the tree to
    its full depth instead of leaving it at the first bit."""
    rng = random.Random(4)
    nets, seen = [], set()

    def add(net):
        if net.version == 4 and CLIENT in net:
            return
        if net not in seen:
            seen.add(net)
            nets.append(net)

    for plen in range(9, 33):
        mine = ipaddress.ip_network("127.0.0.1/%d" % plen, strict=False)
        sibling = int(mine.network_address) ^ (1 << (32 - plen))
        add(ipaddress.ip_network((sibling, plen)))
    v4_lengths = [32] * 6 + [24] * 3 + list(range(12, 32))
    v6_lengths = [128, 64, 64, 56, 48, 48, 40, 32]
    while len(nets) < DENY_ENTRIES:
        if rng.random() < 0.85:
            plen = rng.choice(v4_lengths)
            addr = rng.getrandbits(32)
            add(ipaddress.ip_network((addr >> (32 - plen) << (32 - plen), plen)))
        else:
            plen = rng.choice(v6_lengths)
            addr = (0x2 << 125) | rng.getrandbits(125)  # 2000::/3
            add(ipaddress.ip_network((addr >> (128 - plen) << (128 - plen),
                                      plen)))
    assert not any(n.version == 4 and CLIENT in n for n in nets)
    return [str(n) for n in nets]


def claims():
    now = J.now()
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1234",
            "scope": "orders.read orders.write", "iat": now,
            "exp": now + 86400}


def tamper(token):
    """The same token with one signature byte changed."""
    head, payload, sig = token.split(".")
    raw = bytearray(J.base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return head + "." + payload + "." + J.b64url(bytes(raw))


def q(s):
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(s)


def provider_yaml(name, alg, source):
    return ["  - name: %s" % name, "    issuer: %s" % q(ISSUER),
            "    audiences: [%s]" % q(AUDIENCE),
            "    algorithms: [%s]" % alg, "    " + source]


def route_yaml(name, path, extra=()):
    lines = ["  - name: %s" % name, "    match: {path: %s}" % path,
             "    upstream: up", "    strip_prefix: %s" % path]
    return lines + ["    " + x for x in extra]


def write(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def prepare(d):
    os.makedirs(os.path.join(d, "tokens"), exist_ok=True)
    ec = J.Key(d, "ec256", "P-256")
    rsa = J.Key(d, "rsa", "RSA")
    jwks = os.path.join(d, "jwks.json")
    with open(jwks, "w") as f:
        json.dump({"keys": [ec.jwk("ec-1", "ES256"),
                            rsa.jwk("rsa-1", "RS256")]}, f)
    secret = secrets.token_hex(32)  # 64 bytes of text, >= 32 for HS256
    c = claims()
    tokens = {"hs256": J.mint("HS256", c, secret=secret),
              "es256": J.mint("ES256", c, key=ec, kid="ec-1"),
              "rs256": J.mint("RS256", c, key=rsa, kid="rsa-1")}
    tokens["es256-bad"] = tamper(tokens["es256"])
    for name, tok in tokens.items():
        with open(os.path.join(d, "tokens", name), "w") as f:
            f.write(tok + "\n")

    schema = os.path.join(d, "schema.json")
    with open(schema, "w") as f:
        json.dump(SCHEMA, f, indent=1)
    with open(os.path.join(d, "body.json"), "wb") as f:
        f.write(body(True))
    with open(os.path.join(d, "body-bad.json"), "wb") as f:
        f.write(body(False))

    deny = deny_list()
    with open(os.path.join(d, "deny.txt"), "w") as f:
        f.write("\n".join(deny) + "\n")
    deny_yaml = ["      - %s" % q(n) for n in deny]

    # small.yaml: appended to lib.sh's config, whose last key is routes:
    small = route_yaml("bare", "/bare")
    small += route_yaml("hs256", "/hs256", ["auth: {jwt: hs}"])
    small += route_yaml("es256", "/es256", ["auth: {jwt: es}"])
    small += route_yaml("rs256", "/rs256", ["auth: {jwt: rs}"])
    small += route_yaml("acl10k", "/acl10k", ["acl:", "  deny:"]) + deny_yaml
    small += route_yaml("post1k", "/post1k")
    small += route_yaml("schema", "/schema", [
        "validate:", "  content_types: [application/json]",
        "  max_body_bytes: 4k", "  json_schema: %s" % q(schema)])
    small += ["jwt:", "  providers:"]
    small += provider_yaml("hs", "HS256", "secret: %s" % q(secret))
    small += provider_yaml("es", "ES256", "jwks_file: %s" % q(jwks))
    small += provider_yaml("rs", "RS256", "jwks_file: %s" % q(jwks))
    write(os.path.join(d, "small.yaml"), small)

    # all.yaml: lib.sh's "/" route + 998 others + /all = 1,000 routes, all
    # distinct prefixes, half under a shared /api/v1 so the tree has a wide
    # node; the deny list is global (it covers the 999 others too).
    extra = []
    for i in range(ROUTES_ALL - 2):
        if i % 2:
            path = "/api/v1/svc%03d" % i
        elif i % 4 == 0:
            path = "/s%03d/items/{id}" % i
        else:
            path = "/s%03d/orders" % i
        extra += ["  - name: f%03d" % i, "    match: {path: %s}" % q(path),
                  "    upstream: up"]
    extra += route_yaml("all", "/all", ["auth: {jwt: es}"])
    extra += ["jwt:", "  providers:"]
    extra += provider_yaml("es", "ES256", "jwks_file: %s" % q(jwks))
    extra += ["acl:", "  deny:"] + ["  " + x[2:] for x in deny_yaml]
    write(os.path.join(d, "all.yaml"), extra)
    return 0


def fmt_ratio(v):
    return "%.2f" % v


def render(index, titles):
    groups, order, notes = report.load(index)
    med = {s: report.median_of(groups[(s, t)]) for s, t in order}
    bare = med.get("bare")
    rows = ["| scenario | req/s | p50 ms | p99 ms | req/s ratio to bare "
            "| p99 ratio to bare |", "|---|---:|---:|---:|---:|---:|"]
    for s, _ in order:
        m = med[s]
        if m is None:
            rows.append("| %s | failed | | | | |" % s)
            continue
        r = p = "-"
        if bare:
            r = fmt_ratio(m["rps"] / bare["rps"])
            p = fmt_ratio(m["p99"] / bare["p99"])
        rows.append("| %s | %.0f | %s | %s | %s | %s |" % (
            s, m["rps"], report.fmt_ms(m["p50"]), report.fmt_ms(m["p99"]),
            r, p))
    # The noise floor, printed with the table: a ratio nearer to its target
    # than a row's own run-to-run spread is not resolved by this run.
    spread = ["%s %.2f" % (s, max(r["rps"] for r in groups[(s, t)]) /
                            min(r["rps"] for r in groups[(s, t)]))
              for s, t in order if groups[(s, t)]]
    rows += ["", "Run-to-run spread (fastest / slowest run's req/s): " +
             ", ".join(spread) + "."]
    verdicts = ["", "Targets of issue 4 (req/s ratio to bare):", ""]
    suspect = {n.split(",")[0] for n in notes}
    for s, want in TARGETS.items():
        m = med.get(s)
        if m is None or not bare:
            verdicts.append("- %s >= %.2f: not measured" % (s, want))
            continue
        got = m["rps"] / bare["rps"]
        verdict = "met" if got >= want else "MISSED"
        if s in suspect or "bare" in suspect:
            verdict += " (suspect: wrk reported errors, see below)"
        verdicts.append("- %s >= %.2f: %s (%.3f)" % (s, want, verdict, got))
    lines = list(titles) + ([""] if titles else []) + rows + verdicts
    if notes:
        lines += ["", "Problems reported by wrk (these rows are suspect):", ""]
        lines += ["- " + n for n in notes]
    print("\n".join(lines))
    return 1 if any(m is None for m in med.values()) else 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "prepare":
        return prepare(sys.argv[2])
    if len(sys.argv) >= 3 and sys.argv[1] == "report":
        return render(sys.argv[2], sys.argv[3:])
    sys.exit("usage: security_setup.py prepare DIR | report INDEX [TITLE...]")


if __name__ == "__main__":
    sys.exit(main())
