/* Shared set-up of the client fuzz targets: the PyJWT test vectors' keys,
 * issuer and license key (client/tests/vectors.json), a state directory in
 * memory (/dev/shm when there is one, else $TMPDIR or /tmp) that is
 * removed when the target exits. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "../tests/handle.h"

static struct lcl_keys fz_keys;
static const char *fz_issuer, *fz_jwks, *fz_key;
static char fz_dir[256], fz_state_path[512], fz_import_path[512];
static struct json_object *fz_vec;

static int64_t fz_wall(void *a) { (void)a; return 1800000000; }
static int64_t fz_mono(void *a) { (void)a; return 1000; }

static licd_t *fz_open(licd_transport_fn t)
{
	struct licd_config c;
	licd_t *h = NULL;
	char err[256];

	lt_config(&c, fz_issuer, fz_jwks, fz_key, "pyjwt-inst-1", fz_dir, t);
	c.wall_clock = fz_wall;
	c.mono_clock = fz_mono;
	return licd_open(&c, &h, err, sizeof(err)) == 0 ? h : NULL;
}

static void fz_cleanup(void)
{
	DIR *d = opendir(fz_dir);
	struct dirent *e;
	char p[768];

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", fz_dir, e->d_name);
		unlink(p);
	}
	if (d != NULL)
		closedir(d);
	rmdir(fz_dir);
	json_object_put(fz_vec);
	lcl_keys_free(&fz_keys);
}

/* Whether d is one JSON object, as the library's answers must be. */
static int fz_json_object(const unsigned char *d, size_t n)
{
	struct json_tokener *t = json_tokener_new();
	struct json_object *o;
	int ok;

	if (t == NULL || n > 1 << 20)
		return 0;
	o = json_tokener_parse_ex(t, (const char *)d, (int)n);
	ok = o != NULL && json_tokener_get_error(t) == json_tokener_success &&
	    json_object_is_type(o, json_type_object);
	json_object_put(o);
	json_tokener_free(t);
	return ok;
}

static int fz_init(void)
{
	char err[128];
	licd_t *h;
	const char *lid, *base = getenv("TMPDIR");

	if (access("/dev/shm", W_OK) == 0)
		base = "/dev/shm";
	snprintf(fz_dir, sizeof(fz_dir), "%s/licd-client-fuzz.XXXXXX",
	    base != NULL && base[0] != '\0' ? base : "/tmp");
	fz_vec = json_object_from_file("client/tests/vectors.json");
	if (fz_vec == NULL || mkdtemp(fz_dir) == NULL)
		abort();
	/* libFuzzer ends a run with exit(): the directory goes with it. */
	atexit(fz_cleanup);
	fz_issuer = json_object_get_string(json_object_object_get(fz_vec,
	    "issuer"));
	fz_jwks = strdup(json_object_to_json_string(json_object_object_get(
	    fz_vec, "jwks")));
	fz_key = json_object_get_string(json_object_object_get(fz_vec,
	    "license_key"));
	lid = json_object_get_string(json_object_object_get(fz_vec, "sub"));
	if (lcl_keys_parse(fz_jwks, &fz_keys, err, sizeof(err)) != 0)
		abort();
	/* The state file's name as the library forms it. */
	h = fz_open(NULL);
	if (h == NULL)
		abort();
	licd_close(h);
	{
		unsigned char d[32];
		char hx[17];
		static const char x[] = "0123456789abcdef";
		EVP_MD_CTX *c = EVP_MD_CTX_new();
		unsigned int n;
		int i;

		EVP_DigestInit_ex(c, EVP_sha256(), NULL);
		EVP_DigestUpdate(c, "pyjwt-inst-1", 12);
		EVP_DigestFinal_ex(c, d, &n);
		EVP_MD_CTX_free(c);
		for (i = 0; i < 8; i++) {
			hx[2 * i] = x[d[i] >> 4];
			hx[2 * i + 1] = x[d[i] & 15];
		}
		hx[16] = '\0';
		snprintf(fz_state_path, sizeof(fz_state_path), "%s/%s-%s.state",
		    fz_dir, lid, hx);
	}
	snprintf(fz_import_path, sizeof(fz_import_path), "%s/import", fz_dir);
	return 0;
}
