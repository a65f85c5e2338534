#!/usr/bin/python3
"""Verifies a licd lease offline with pinned keys, in Python (PyJWT).

    verify_lease.py JWKS_FILE ISSUER LICENSE_ID INSTALLATION_ID < lease

Prints the verified claims as JSON and exits 0, or prints why and exits 1.
The key is chosen by kid among the pinned keys only, and the key's type
fixes the algorithm: the token's own "alg" never chooses it."""
import json
import sys

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm


def verify_lease(token, jwks, issuer, license_id, installation_id):
    header = jwt.get_unverified_header(token)
    pinned = {k["kid"]: k for k in jwks["keys"]}
    jwk = pinned.get(header.get("kid"))
    if jwk is None:
        raise jwt.InvalidTokenError("kid is not a pinned key")
    if jwk["kty"] == "EC" and jwk["crv"] == "P-256":
        alg, key = "ES256", ECAlgorithm.from_jwk(json.dumps(jwk))
    elif jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519":
        alg, key = "EdDSA", OKPAlgorithm.from_jwk(json.dumps(jwk))
    else:
        raise jwt.InvalidTokenError("unsupported pinned key")
    if header.get("typ") != "lease+jwt":
        raise jwt.InvalidTokenError("not a lease (typ)")
    # leeway: the two machines' clocks differ a little (licd's iat is its
    # database's clock, rounded to the second).
    claims = jwt.decode(token, key, algorithms=[alg], issuer=issuer,
                        leeway=60,
                        options={"require": ["iss", "sub", "iat", "exp"]})
    if claims["sub"] != license_id:
        raise jwt.InvalidTokenError("lease is for another license")
    if claims.get("iid") != installation_id:
        raise jwt.InvalidTokenError("lease is for another installation")
    return claims


if __name__ == "__main__":
    jwks_file, issuer, license_id, iid = sys.argv[1:5]
    with open(jwks_file) as f:
        jwks = json.load(f)
    try:
        claims = verify_lease(sys.stdin.read().strip(), jwks, issuer,
                              license_id, iid)
    except jwt.PyJWTError as e:
        print("refused: %s" % e)
        sys.exit(1)
    print(json.dumps(claims))
