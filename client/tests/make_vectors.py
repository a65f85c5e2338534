#!/usr/bin/python3
"""Writes client/tests/vectors.json: leases signed by an independent JWT
library (PyJWT over cryptography), for the C unit tests. Run again only to
regenerate; the private keys are thrown away.

Also hostile tokens no honest signer makes: alg "none", HS256 keyed with
the public key's PEM (the classic algorithm-confusion forgery)."""
import base64
import hashlib
import hmac
import json
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ISS = "https://licensing.example.com"
SUB = "6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5"
IID = "pyjwt-inst-1"
EXP = 4102444800  # 2100-01-01


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def thumb(jwk):
    if jwk["kty"] == "EC":
        m = {"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]}
    else:
        m = {"crv": jwk["crv"], "kty": "OKP", "x": jwk["x"]}
    return b64(hashlib.sha256(json.dumps(m, separators=(",", ":"),
                                         sort_keys=True).encode()).digest())


ek = ec.generate_private_key(ec.SECP256R1())
nums = ek.public_key().public_numbers()
ejwk = {"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
        "x": b64(nums.x.to_bytes(32, "big")),
        "y": b64(nums.y.to_bytes(32, "big"))}
ejwk["kid"] = thumb(ejwk)

dk = ed25519.Ed25519PrivateKey.generate()
raw = dk.public_key().public_bytes(serialization.Encoding.Raw,
                                   serialization.PublicFormat.Raw)
djwk = {"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
        "x": b64(raw)}
djwk["kid"] = thumb(djwk)

claims = {"iss": ISS, "sub": SUB, "iid": IID, "lic": "pro",
          "feat": ["sso", "reports"], "limits": {"installations": 3,
                                                  "workflows_per_month": 500},
          "iat": 1764000000, "exp": EXP, "license_exp": EXP,
          "domain_restrictions": ["example.com", "*.example.com"]}
es = jwt.encode(claims, ek, algorithm="ES256",
                headers={"kid": ejwk["kid"], "typ": "lease+jwt"})
ed = jwt.encode(claims, dk, algorithm="EdDSA",
                headers={"kid": djwk["kid"], "typ": "lease+jwt"})
key = jwt.encode({"iss": ISS, "sub": SUB, "lic": "pro", "iat": 1764000000},
                 ek, algorithm="ES256",
                 headers={"kid": ejwk["kid"], "typ": "JWT"})
old = dict(claims)
for k in ("license_exp", "domain_restrictions"):
    old.pop(k)
old_lease = jwt.encode(old, ek, algorithm="ES256",
                       headers={"kid": ejwk["kid"], "typ": "lease+jwt"})

pem = ek.public_key().public_bytes(
    serialization.Encoding.PEM,
    serialization.PublicFormat.SubjectPublicKeyInfo)
body = b64(json.dumps(claims).encode())
h_none = b64(json.dumps({"alg": "none", "kid": ejwk["kid"],
                         "typ": "lease+jwt"}).encode())
h_hs = b64(json.dumps({"alg": "HS256", "kid": ejwk["kid"],
                       "typ": "lease+jwt"}).encode())
hs_sig = b64(hmac.new(pem, (h_hs + "." + body).encode(),
                      hashlib.sha256).digest())

json.dump({"issuer": ISS, "sub": SUB, "iid": IID,
           "jwks": {"keys": [ejwk, djwk]},
           "es256_lease": es, "eddsa_lease": ed, "license_key": key,
           "old_lease": old_lease,
           "alg_none": h_none + "." + body + ".",
           "hs256_pubkey": h_hs + "." + body + "." + hs_sig},
          sys.stdout, indent=1)
print()
