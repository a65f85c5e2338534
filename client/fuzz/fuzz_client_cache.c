/*
 * libFuzzer: the lease cache file as liblicd-client reads it (state
 * parsing, then the lease in it verified as on every load), through a
 * handle opening a state directory that holds the input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "fuzz_client.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return fz_init();
}

int LLVMFuzzerTestOneInput(const unsigned char *d, size_t n)
{
	struct lcl_state st;
	struct lcl_lease l;
	struct lcl_expect e = { fz_issuer, NULL, NULL, NULL, 0 };
	const char *why;
	char *txt = malloc(n + 1);

	memcpy(txt, d, n);
	txt[n] = '\0';
	if (lcl_state_parse(txt, n, &st) != 0) {
		/* A handle treats it as no state at all: nothing more to
		 * reach (a handle per input is the slow part). */
		free(txt);
		return 0;
	}
	if (st.lease != NULL &&
	    lcl_lease_verify(&fz_keys, st.lease, &e, &l, &why) == 0)
		lcl_lease_free(&l);
	lcl_state_free(&st);
	/* The same bytes as the file a handle loads at open. */
	{
		FILE *f = fopen(fz_state_path, "w");
		licd_t *h;
		struct licd_info in;

		fwrite(d, 1, n, f);
		fclose(f);
		if ((h = fz_open(NULL)) != NULL) {
			licd_check(h, "sso", &in);
			licd_close(h);
		}
	}
	free(txt);
	return 0;
}
