/*
 * A vendor's program gating a feature with liblicd-client: "reports" runs
 * when the license includes it; otherwise the program degrades to its
 * free tier instead of stopping. Build: make (build/bin/licd-gate-example),
 * or against an installed library:
 *   cc gate.c $(pkg-config --cflags --libs licd-client)
 *
 *   LICD_LICENSE_KEY=eyJ... licd-gate-example [STATE_DIR]
 */
#include <stdio.h>
#include <stdlib.h>

#include "licd.h"
#include "licd-embed.h"		/* the vendor's URL, issuer, keys */

static void run_reports(long long max_workflows)
{
	printf("reports: full edition (up to %lld workflows a month)\n",
	    max_workflows);
}

static void run_free_reports(void)
{
	printf("reports: free edition (last 7 days only)\n");
}

int main(int argc, char **argv)
{
	struct licd_config cfg;
	struct licd_info info;
	licd_t *lic = NULL;
	long long n = 0;
	char err[256];

	licd_config_init(&cfg);
	cfg.base_url = LICD_EMBED_URL;
	cfg.issuer = LICD_EMBED_ISSUER;
	cfg.jwks = LICD_EMBED_JWKS;
	cfg.product = LICD_EMBED_PRODUCT;
	cfg.license_key = getenv("LICD_LICENSE_KEY");
	cfg.state_dir = argc > 1 ? argv[1] : "/var/lib/" LICD_EMBED_PRODUCT;
	/* ArchNest's rule: the free core after 7 days without a check. */
	cfg.mode = LICD_DEGRADE;
	cfg.offline_grace = 7 * 86400;
	cfg.refresh = LICD_REFRESH_INLINE;

	if (cfg.license_key == NULL || LICD_EMBED_JWKS[0] == '\0' ||
	    licd_open(&cfg, &lic, err, sizeof(err)) != 0) {
		/* No license at all: the free tier, never a crash. */
		fprintf(stderr, "licensing: %s\n", cfg.license_key == NULL ?
		    "no license key" : LICD_EMBED_JWKS[0] == '\0' ?
		    "built without embedded keys" : err);
		run_free_reports();
		return 0;
	}
	switch (licd_check(lic, "reports", &info)) {
	case LICD_ALLOW:
		if (licd_limit(lic, "workflows_per_month", &n) != 0)
			n = -1;
		run_reports(n);
		break;
	case LICD_FREE_TIER:
	case LICD_DENY:
		run_free_reports();
		break;
	}
	fprintf(stderr, "licensing: %s: %s\n", licd_status_name(info.status),
	    info.message);
	licd_close(lic);
	return 0;
}
