// Verifies a licd lease offline with pinned keys, in Node (jose; Debian's
// node-jose package, on NODE_PATH=/usr/share/nodejs).
//
//   node verify_lease.js JWKS_FILE ISSUER LICENSE_ID INSTALLATION_ID < lease
//
// Prints the verified claims as JSON and exits 0, or prints why and exits 1.
// The key is chosen by kid among the pinned keys only, and the key's type
// fixes the algorithm: the token's own "alg" never chooses it.
'use strict';
const fs = require('fs');
const { importJWK, jwtVerify, decodeProtectedHeader } = require('jose');

async function verifyLease(token, jwks, issuer, licenseId, installationId) {
  const { kid } = decodeProtectedHeader(token);
  const jwk = jwks.keys.find((k) => k.kid === kid);
  if (!jwk) throw new Error('kid is not a pinned key');
  let alg;
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') alg = 'ES256';
  else if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') alg = 'EdDSA';
  else throw new Error('unsupported pinned key');
  const key = await importJWK(jwk, alg);
  const { payload } = await jwtVerify(token, key, {
    algorithms: [alg], issuer, subject: licenseId, typ: 'lease+jwt',
    requiredClaims: ['iat', 'exp'],
    clockTolerance: 60, // the two machines' clocks differ a little
  });
  if (payload.iid !== installationId) {
    throw new Error('lease is for another installation');
  }
  return payload;
}

const [jwksFile, issuer, licenseId, iid] = process.argv.slice(2);
const jwks = JSON.parse(fs.readFileSync(jwksFile, 'utf8'));
const token = fs.readFileSync(0, 'utf8').trim();
verifyLease(token, jwks, issuer, licenseId, iid).then(
  (claims) => console.log(JSON.stringify(claims)),
  (err) => { console.log('refused: ' + err.message); process.exit(1); });
