/*
 * The handle configuration the client's unit tests, fuzz targets and bench
 * share: licd behind a transport callback (no network), refreshes only
 * when asked, the caller's keys, key, installation and state directory.
 * Each then sets what it tests (clocks, mode, refresh mode, grace).
 */
#ifndef LICD_CLIENT_TEST_HANDLE_H
#define LICD_CLIENT_TEST_HANDLE_H

#include "licd.h"

static inline void lt_config(struct licd_config *c, const char *issuer,
    const char *jwks, const char *license_key, const char *iid,
    const char *state_dir, licd_transport_fn transport)
{
	licd_config_init(c);
	c->base_url = "http://licd.invalid";
	c->issuer = issuer;
	c->jwks = jwks;
	c->product = "licd-client-test";
	c->license_key = license_key;
	c->installation_id = iid;
	c->state_dir = state_dir;
	c->refresh = LICD_REFRESH_MANUAL;
	c->transport = transport;
}

#endif
