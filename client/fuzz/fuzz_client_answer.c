/*
 * libFuzzer: licd's answers as liblicd-client receives them (validate,
 * heartbeat, usage, deactivate bodies), through the transport callback,
 * and the same bytes as a lease token and as an offline import file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "fuzz_client.h"

static const unsigned char *cur;
static size_t cur_n;

static int fz_post(void *arg, const char *url, const char *body, size_t len,
    long timeout_ms, struct licd_response *resp)
{
	(void)arg;
	(void)url;
	(void)body;
	(void)len;
	(void)timeout_ms;
	resp->status = cur_n > 0 && cur[cur_n - 1] == '\n' ? 429 : 200;
	resp->body = malloc(cur_n + 1);
	memcpy(resp->body, cur, cur_n);
	resp->body[cur_n] = '\0';
	resp->len = cur_n;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return fz_init();
}

int LLVMFuzzerTestOneInput(const unsigned char *d, size_t n)
{
	struct licd_info in;
	struct lcl_lease l;
	struct lcl_expect e = { fz_issuer, NULL, NULL, NULL, 0 };
	const char *why, *msg;
	char *tok = malloc(n + 1);
	licd_t *h;

	memcpy(tok, d, n);
	tok[n] = '\0';
	if (lcl_lease_verify(&fz_keys, tok, &e, &l, &why) == 0)
		lcl_lease_free(&l);
	free(tok);
	/* The same bytes as an offline lease file (licd_import's reading). */
	if ((tok = lcl_find_token((const char *)d, n)) != NULL) {
		if (lcl_lease_verify(&fz_keys, tok, &e, &l, &why) == 0)
			lcl_lease_free(&l);
		free(tok);
	}
	/* Through a handle, as licd's answer: only what parses as a JSON
	 * object gets past the first look at an answer, so the rest stops
	 * here (a handle per input is the slow part). */
	if (!fz_json_object(d, n))
		return 0;
	cur = d;
	cur_n = n;
	unlink(fz_state_path);
	if ((h = fz_open(fz_post)) == NULL)
		return 0;
	licd_refresh(h, &in);
	licd_heartbeat(h, &in);
	licd_check(h, "sso", &in);
	licd_usage(h, "sso", 1, &msg);
	{
		FILE *f = fopen(fz_import_path, "w");

		fwrite(d, 1, n, f);
		fclose(f);
		licd_import(h, fz_import_path, &in);
	}
	licd_deactivate(h, &msg);
	licd_close(h);
	return 0;
}
