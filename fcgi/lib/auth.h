/*
 * auth: admin bearer tokens. The configuration holds only SHA-256 hashes
 * (admin_tokens = name:hex[,name:hex…]); a presented token is hashed and
 * compared with every configured hash in constant time (CRYPTO_memcmp,
 * no early exit), so neither the token nor which entry matched leaks
 * through timing. Tokens never reach logs; the matching name does.
 */
#ifndef LICD_AUTH_H
#define LICD_AUTH_H

#include "http.h"

/* Loads admin_tokens; -1 on a malformed entry. No tokens: every admin
 * request is refused. */
int auth_init(void);

/* 0 and *actor = the token's name when the request carries a valid
 * "Authorization: Bearer <token>"; otherwise -1 with a 401 response set. */
int auth_admin(struct http_req *req, struct http_resp *resp,
    const char **actor);

/* Hex SHA-256 of token into out[65]; used by licctl to configure one. */
void auth_hash_hex(const char *token, char out[65]);

#endif
