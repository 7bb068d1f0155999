"""Minting JWS tokens (RFC 7515 compact form) and JWK Sets for the
end-to-end tests, with the standard library and the `openssl` CLI only.

Keys are generated with `openssl genpkey`; signatures come from
`openssl dgst -sign` (RSA PKCS#1 v1.5, RSA-PSS, ECDSA, whose DER output is
converted to the raw R||S form RFC 7518 §3.4 requires) and
`openssl pkeyutl -sign -rawin` (Ed25519); HMAC from Python's hmac module.
The JWK members are read back from the public key's DER/modulus, so the
JWKS the gateway loads is derived independently of the signing path."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time

HASHES = {"256": "sha256", "384": "sha384", "512": "sha512"}
EC_SIZES = {"P-256": 32, "P-384": 48}


def b64url(data):
    """Unpadded base64url (RFC 7515 §2)."""
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def _run(args, data=None):
    r = subprocess.run(["openssl"] + args, input=data, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr.decode()))
    return r.stdout


def der_to_raw(der, size):
    """An ECDSA-Sig-Value (SEQUENCE of INTEGER r, INTEGER s) as R||S, each
    left-padded to size bytes."""
    def length(buf, i):
        n = buf[i]
        if n < 0x80:
            return n, i + 1
        k = n & 0x7F
        return int.from_bytes(buf[i + 1:i + 1 + k], "big"), i + 1 + k

    assert der[0] == 0x30, "not a DER SEQUENCE"
    _, i = length(der, 1)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02, "not a DER INTEGER"
        n, i = length(der, i + 1)
        v = der[i:i + n].lstrip(b"\x00")
        assert len(v) <= size
        out += v.rjust(size, b"\x00")
        i += n
    return out


class Key:
    """A private key file and its public JWK. kind: RSA, P-256, P-384, Ed25519."""

    def __init__(self, directory, name, kind):
        self.kind = kind
        self.path = os.path.join(directory, name + ".pem")
        if kind == "RSA":
            _run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                  "-out", self.path])
        elif kind in EC_SIZES:
            _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:" + kind,
                  "-out", self.path])
        elif kind == "Ed25519":
            _run(["genpkey", "-algorithm", "ED25519", "-out", self.path])
        else:
            raise ValueError(kind)
        self.public_pem = _run(["pkey", "-in", self.path, "-pubout"])
        self.public_der = _run(["pkey", "-in", self.path, "-pubout", "-outform", "DER"])

    def jwk(self, kid=None, alg=None):
        if self.kind == "RSA":
            mod = _run(["rsa", "-in", self.path, "-noout", "-modulus"]).decode().strip()
            assert mod.startswith("Modulus=")
            text = _run(["rsa", "-in", self.path, "-noout", "-text"]).decode()
            e = int(text.split("publicExponent:")[1].split()[0])
            k = {"kty": "RSA", "n": b64url(bytes.fromhex(mod[len("Modulus="):])),
                 "e": b64url(e.to_bytes((e.bit_length() + 7) // 8, "big"))}
        elif self.kind in EC_SIZES:
            size = EC_SIZES[self.kind]
            point = self.public_der[-(1 + 2 * size):]
            assert point[0] == 4, "expected an uncompressed EC point"
            k = {"kty": "EC", "crv": self.kind, "x": b64url(point[1:1 + size]),
                 "y": b64url(point[1 + size:])}
        else:
            k = {"kty": "OKP", "crv": "Ed25519", "x": b64url(self.public_der[-32:])}
        if kid is not None:
            k["kid"] = kid
        if alg is not None:
            k["alg"] = alg
        return k

    def sign(self, alg, data, der=False):
        """The JWS signature of data for alg (RS*, PS256, ES*, EdDSA).
        der=True leaves an ECDSA signature DER-encoded (a wrong encoding)."""
        if alg == "EdDSA":
            tmp = self.path + ".in"
            with open(tmp, "wb") as f:
                f.write(data)
            try:
                return _run(["pkeyutl", "-sign", "-inkey", self.path, "-rawin", "-in", tmp])
            finally:
                os.unlink(tmp)
        md = HASHES[alg[2:]]
        args = ["dgst", "-" + md, "-binary", "-sign", self.path]
        if alg.startswith("PS"):
            args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt",
                     "rsa_pss_saltlen:%d" % hashlib.new(md).digest_size]
        sig = _run(args, data)
        if alg.startswith("ES") and not der:
            sig = der_to_raw(sig, EC_SIZES[self.kind])
        return sig


def hmac_sign(alg, secret, data):
    if isinstance(secret, str):
        secret = secret.encode()
    return hmac.new(secret, data, HASHES[alg[2:]]).digest()


def mint(alg, claims, key=None, secret=None, kid=None, header=None, der=False):
    """A compact JWS: header {alg, typ, kid} (plus/overridden by header),
    payload claims, signed with key (asymmetric) or secret (HS*)."""
    h = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        h["kid"] = kid
    h.update(header or {})
    signing_input = (b64url_json(h) + "." + b64url_json(claims)).encode()
    return (signing_input + b"." + b64url(sign(alg, signing_input, key, secret, der))
            .encode()).decode()


def sign(alg, signing_input, key=None, secret=None, der=False):
    if alg.startswith("HS"):
        return hmac_sign(alg, secret, signing_input)
    return key.sign(alg, signing_input, der=der)


def sign_segments(alg, header_seg, payload_seg, key=None, secret=None):
    """A token from already-encoded segments (possibly malformed ones),
    correctly signed over exactly these bytes."""
    si = (header_seg + "." + payload_seg).encode()
    return header_seg + "." + payload_seg + "." + b64url(sign(alg, si, key, secret))


def now():
    return int(time.time())
