"""Fixtures of the end-to-end suite: certificates (session scope), and an
Env owning recording upstreams and gateways (function scope) that stops and
checks them at teardown. Modules that share one gateway build their own
module-scoped Env the same way."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """Test CA with server certificates; a second, untrusted CA."""
    d = str(tmp_path_factory.mktemp("certs"))
    ca = helpers.Certs(d)
    ca.a = ca.issue("a.test", ["DNS:a.test", "DNS:*.a.test"])
    ca.b = ca.issue("b.test", ["DNS:b.test"])
    ca.localhost = ca.issue("localhost", ["DNS:localhost", "IP:127.0.0.1"])
    ca.other = ca.issue("other.test", ["DNS:other.test"])
    rogue = helpers.Certs(os.path.join(d, "rogue"), "rogue-ca")
    ca.rogue_localhost = rogue.issue("localhost", ["DNS:localhost", "IP:127.0.0.1"])
    ca.rogue_ca = rogue.ca
    return ca


@pytest.fixture
def env(tmp_path):
    """env.upstream(name, ...) and env.gateway(config, ...) for one test."""
    e = helpers.Env(tmp_path)
    yield e
    e.close()

