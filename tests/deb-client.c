/*
 * deb-client: a vendor's program built against the installed
 * liblicd-client-dev (tests/deb-test.sh compiles it with pkg-config, once
 * against the shared library and once against the static one).
 *
 *   deb-client JWKS_FILE ISSUER KEY_FILE STATE_DIR
 *
 * Opens a handle with the installed server's JWKS and the key in KEY_FILE,
 * never contacting licd (manual refresh, an address nothing listens on),
 * and prints the status licd_check answers: NOT_ACTIVATED for a key the
 * JWKS verifies (no lease yet), INVALID_KEY for any other. Exit 0 when it
 * could ask, 1 otherwise.
 */
#include <licd.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc(n + 1)) != NULL) {
		if (fread(buf, 1, n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			/* the key file's line ends in a newline */
			while (n > 0 && isspace((unsigned char)buf[n - 1]))
				n--;
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

int main(int argc, char **argv)
{
	struct licd_config cfg;
	struct licd_info info;
	char err[256];
	char *jwks = NULL, *key = NULL;
	licd_t *h = NULL;
	int rc = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: deb-client JWKS_FILE ISSUER KEY_FILE STATE_DIR\n");
		return 2;
	}
	if ((jwks = slurp(argv[1])) == NULL || (key = slurp(argv[3])) == NULL) {
		perror("deb-client");
		goto out;
	}
	licd_config_init(&cfg);
	cfg.base_url = "http://127.0.0.1:9";
	cfg.jwks = jwks;
	cfg.issuer = argv[2];
	cfg.product = "deb-test";
	cfg.license_key = key;
	cfg.installation_id = "deb-test";
	cfg.state_dir = argv[4];
	cfg.refresh = LICD_REFRESH_MANUAL;
	if (licd_open(&cfg, &h, err, sizeof(err)) != 0) {
		fprintf(stderr, "deb-client: %s\n", err);
		goto out;
	}
	licd_check(h, NULL, &info);
	printf("%s\n", licd_status_name(info.status));
	rc = 0;
out:
	if (h != NULL)
		licd_close(h);
	free(jwks);
	free(key);
	return rc;
}
