/*
 * licctl keys and token: the signing keys in keys_dir, the JWKS that
 * publishes them, and admin API tokens.
 *
 * Key files: <kid>.key (private, 0640) and <kid>.pub (0644), group-owned
 * by keys_group (default: keys_dir's own group, root:licd 0750 in
 * production), so that the service user reads the private key whoever
 * runs licctl. Each is written beside its name and renamed, so a program
 * reloading its keys (lic_keys_reload) never reads half a file.
 */
#include "cli.h"
#include "auth.h"
#include "config.h"
#include "jwt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

static const char *keys_dir(void)
{
	return cfg_str("keys_dir");
}

static int write_file(struct cli_err *e, const char *path, const char *data,
    mode_t mode)
{
	char tmp[4200];
	int fd;
	size_t n = strlen(data);

	/* Written beside the target and renamed: readers (nginx, programs
	 * starting up) never see a half-written file. */
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return cli_fail(e, 1, "%s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0 || write(fd, data, n) != (ssize_t)n ||
	    fsync(fd) != 0) {
		close(fd);
		return cli_fail(e, 1, "%s: write failed", tmp);
	}
	if (close(fd) != 0)
		return cli_fail(e, 1, "%s: write failed", tmp);
	if (rename(tmp, path) != 0)
		return cli_fail(e, 1, "%s: %s", path, strerror(errno));
	return 0;
}

static int mkdirs(struct cli_err *e, const char *dir, mode_t mode)
{
	char buf[4096], *p;

	snprintf(buf, sizeof(buf), "%s", dir);
	for (p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	if (mkdir(buf, mode) != 0 && errno != EEXIST)
		return cli_fail(e, 1, "%s: %s", dir, strerror(errno));
	return 0;
}

static int write_jwks(struct cli_err *e)
{
	const char *path = cfg_str("jwks_file");
	struct jws_keyring kr;
	struct json_object *doc, *arr;
	char err[512], dir[4096], *slash;
	size_t i;
	int rc = -1;

	if (*path == '\0') {
		fprintf(stderr, "licctl: jwks_file not configured; not written\n");
		return 0;
	}
	if (jws_keyring_load(keys_dir(), &kr, err, sizeof(err)) != 0)
		return cli_fail(e, 1, "%s", err);
	doc = json_object_new_object();
	arr = json_object_new_array();
	/* Current key first: clients that try keys in order find it fast. */
	if (kr.signer != NULL)
		json_object_array_add(arr, jws_jwk(kr.signer->pkey,
		    kr.signer->kid));
	for (i = 0; i < kr.n; i++)
		if (&kr.keys[i] != kr.signer)
			json_object_array_add(arr, jws_jwk(kr.keys[i].pkey,
			    kr.keys[i].kid));
	json_object_object_add(doc, "keys", arr);
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdirs(e, dir, 0755) != 0)
			goto out;
	}
	if (write_file(e, path, json_object_to_json_string_ext(doc,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE), 0644) != 0)
		goto out;
	printf("wrote %s\n", path);
	rc = 0;
out:
	json_object_put(doc);
	jws_keyring_free(&kr);
	return rc;
}

static int keys_gid(struct cli_err *e, const char *dir, gid_t *gid)
{
	const char *name = cfg_str("keys_group");
	struct stat st;
	struct group *g;

	if (*name != '\0') {
		if ((g = getgrnam(name)) == NULL)
			return cli_fail(e, 1, "keys_group: no group '%s'", name);
		*gid = g->gr_gid;
		return 0;
	}
	if (stat(dir, &st) != 0)
		return cli_fail(e, 1, "%s: %s", dir, strerror(errno));
	*gid = st.st_gid;
	return 0;
}

static int write_pem(struct cli_err *e, const char *dir, const char *kid,
    EVP_PKEY *k, int private)
{
	char path[4200], tmp[4300];
	FILE *f = NULL;
	gid_t gid = 0;
	int fd, rc = -1;

	if (keys_gid(e, dir, &gid) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s.%s", dir, kid,
	    private ? "key" : "pub");
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    private ? 0600 : 0644);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		cli_fail(e, 1, "%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* The group first, then the mode that lets it read. */
	if (fchown(fd, (uid_t)-1, gid) != 0) {
		cli_fail(e, 1, "%s: cannot give it group %d: %s", tmp, (int)gid,
		    strerror(errno));
		goto out;
	}
	if (fchmod(fd, private ? 0640 : 0644) != 0 ||
	    (private ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL,
	    NULL) : PEM_write_PUBKEY(f, k)) != 1 || fflush(f) != 0 ||
	    fsync(fd) != 0) {
		cli_fail(e, 1, "%s: write failed", tmp);
		goto out;
	}
	rc = 0;
out:
	fclose(f);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = cli_fail(e, 1, "%s: %s", path, strerror(errno));
	return rc;
}

/* A new key pair in keys_dir of --alg (default key_alg); its kid (the JWK
 * thumbprint) into kid, its algorithm's name into *alg. */
static int new_key(struct cli_err *e, const struct cli_opts *o, char kid[64],
    const char **alg)
{
	const char *dir = keys_dir();
	EVP_PKEY *k = NULL;
	int rc = -1;

	*alg = cli_opt(o, "alg") ? cli_opt(o, "alg") :
	    cfg_str("key_alg");
	if (strcmp(*alg, "ES256") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (strcmp(*alg, "EdDSA") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		return cli_fail(e, 2, "--alg must be ES256 or EdDSA");
	if (k == NULL || jws_thumbprint(k, kid, 64) != 0) {
		cli_fail(e, 1, "key generation failed");
		goto out;
	}
	/* The private key first: once the public one is there, programs
	 * load the pair. */
	if (mkdirs(e, dir, 0750) != 0 || write_pem(e, dir, kid, k, 1) != 0 ||
	    write_pem(e, dir, kid, k, 0) != 0)
		goto out;
	rc = 0;
out:
	EVP_PKEY_free(k);
	return rc;
}

/* The KID positional of activate and retire. */
static int kid_arg(struct cli_err *e, const struct cli_cmd *c,
    const struct cli_opts *o, const char **kid)
{
	*kid = o->npos == 1 ? o->pos[0] : "";
	if (!cli_kid_ok(*kid))
		return cli_fail(e, 2, "usage: licctl keys %s KID (licctl keys "
		    "list)", c->verb);
	return 0;
}

static void current_kid(char kid[JWS_KID_MAX + 2])
{
	char path[4200];
	FILE *f;

	kid[0] = '\0';
	snprintf(path, sizeof(path), "%s/current", keys_dir());
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(kid, JWS_KID_MAX + 2, f) == NULL)
			kid[0] = '\0';
		kid[strcspn(kid, "\r\n")] = '\0';
		fclose(f);
	}
}

/* kid signs from now on: keys_dir/current names it. */
static int activate(struct cli_err *e, const char *kid)
{
	const char *dir = keys_dir();
	char path[4200], line[80];
	EVP_PKEY *k;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.key", dir, kid);
	if ((f = fopen(path, "r")) == NULL)
		return cli_fail(e, 1, "no key %s in %s (licctl keys list)", kid,
		    dir);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL || jws_key_alg(k) == 0) {
		EVP_PKEY_free(k);
		return cli_fail(e, 1, "%s: not a signing key licd can use",
		    path);
	}
	EVP_PKEY_free(k);
	snprintf(path, sizeof(path), "%s/%s.pub", dir, kid);
	if (access(path, R_OK) != 0)
		return cli_fail(e, 1, "%s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/current", dir);
	snprintf(line, sizeof(line), "%s\n", kid);
	return write_file(e, path, line, 0644);
}

int keys_generate(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	char path[4200], kid[64];
	const char *alg;

	(void)c;
	snprintf(path, sizeof(path), "%s/current", keys_dir());
	if (access(path, F_OK) == 0) {
		printf("a current signing key exists; nothing generated "
		    "(use add and activate for a new one)\n");
	} else {
		if (new_key(e, o, kid, &alg) != 0 || activate(e, kid) != 0)
			return -1;
		printf("new %s signing key %s is current\n", alg, kid);
	}
	return write_jwks(e);
}

/* A new key, published; with sign it signs from now on. */
static int add(struct cli_err *e, const struct cli_opts *o, int sign)
{
	char kid[64];
	const char *alg;

	if (new_key(e, o, kid, &alg) != 0 || (sign && activate(e, kid) != 0) ||
	    write_jwks(e) != 0)
		return -1;
	if (sign)
		printf("new %s signing key %s is current; reload the programs "
		    "(SIGHUP)\n", alg, kid);
	else
		printf("new %s key %s published; make it sign with: "
		    "licctl keys activate %s\n", alg, kid, kid);
	return 0;
}

int keys_add(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	(void)c;
	return add(e, o, 0);
}

int keys_rotate(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	(void)c;
	return add(e, o, 1);
}

int keys_activate(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	const char *kid;

	if (kid_arg(e, c, o, &kid) != 0 || activate(e, kid) != 0 ||
	    write_jwks(e) != 0)
		return -1;
	printf("%s is current; reload the programs (SIGHUP) for them to sign "
	    "with it\n", kid);
	return 0;
}

int keys_retire(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	const char *kid, *dir = keys_dir();
	char path[4200], cur[JWS_KID_MAX + 2];

	if (kid_arg(e, c, o, &kid) != 0)
		return -1;
	current_kid(cur);
	if (strcmp(cur, kid) == 0)
		return cli_fail(e, 1, "%s is the current key; activate another "
		    "one first", kid);
	snprintf(path, sizeof(path), "%s/%s.pub", dir, kid);
	if (access(path, F_OK) != 0)
		return cli_fail(e, 1, "no key %s in %s", kid, dir);
	if (cli_opt(o, "force") == NULL) {
		PGresult *r = cli_q(e, "SELECT count(*) FROM licenses WHERE "
		    "key_kid = $1 AND status <> 'revoked'", 1, &kid);
		long n;

		if (r == NULL)
			return -1;
		n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		if (n > 0)
			return cli_fail(e, 1, "%ld licenses not revoked hold keys "
			    "%s signed: reissue them first (licctl license "
			    "reissue --kid %s), or --force", n, kid, kid);
	}
	if (unlink(path) != 0)
		return cli_fail(e, 1, "%s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s.key", dir, kid);
	if (unlink(path) != 0 && errno != ENOENT)
		return cli_fail(e, 1, "%s: %s", path, strerror(errno));
	if (write_jwks(e) != 0)
		return -1;
	printf("%s retired; reload the programs (SIGHUP)\n", kid);
	return 0;
}

int keys_jwks(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	(void)c;
	(void)o;
	return write_jwks(e);
}

int keys_list(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	struct jws_keyring kr;
	char err[512];
	size_t i;

	(void)c;
	(void)o;
	if (jws_keyring_load(keys_dir(), &kr, err, sizeof(err)) != 0)
		return cli_fail(e, 1, "%s", err);
	for (i = 0; i < kr.n; i++)
		printf("%s  %-5s  %s\n", kr.keys[i].kid,
		    jws_alg_name(kr.keys[i].alg),
		    &kr.keys[i] == kr.signer ? "current (signs)" :
		    "verify only");
	jws_keyring_free(&kr);
	return 0;
}

/* An admin API token: printed once, only its SHA-256 goes into the
 * configuration. */
int keys_token_create(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	unsigned char rnd[32];
	char token[64], hash[65];
	const char *name;
	size_t i;

	if (o->npos != 1)
		return cli_usage(e, c);
	name = o->pos[0];
	for (i = 0; name[i]; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' &&
		    name[i] != '_')
			return cli_fail(e, 2, "token names are [A-Za-z0-9_-]");
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return cli_fail(e, 1, "no randomness");
	jws_b64url_encode(rnd, sizeof(rnd), token);
	auth_hash_hex(token, hash);
	printf("token:  %s\nconfig: admin_tokens = %s:%s\n", token, name, hash);
	fprintf(stderr, "licctl: the token is shown only now; store it "
	    "safely.\n");
	return 0;
}
