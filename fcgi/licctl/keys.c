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

static void write_file(const char *path, const char *data, mode_t mode)
{
	char tmp[4200];
	int fd;
	size_t n = strlen(data);

	/* Written beside the target and renamed: readers (nginx, programs
	 * starting up) never see a half-written file. */
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		cli_die("%s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0 || write(fd, data, n) != (ssize_t)n ||
	    fsync(fd) != 0 || close(fd) != 0)
		cli_die("%s: write failed", tmp);
	if (rename(tmp, path) != 0)
		cli_die("%s: %s", path, strerror(errno));
}

static void mkdirs(const char *dir, mode_t mode)
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
		cli_die("%s: %s", dir, strerror(errno));
}

static void write_jwks(void)
{
	const char *path = cfg_str("jwks_file");
	struct jws_keyring kr;
	struct json_object *doc, *arr;
	char err[512], dir[4096], *slash;
	size_t i;

	if (*path == '\0') {
		fprintf(stderr, "licctl: jwks_file not configured; not written\n");
		return;
	}
	if (jws_keyring_load(keys_dir(), &kr, err, sizeof(err)) != 0)
		cli_die("%s", err);
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
		mkdirs(dir, 0755);
	}
	write_file(path, json_object_to_json_string_ext(doc,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE), 0644);
	json_object_put(doc);
	jws_keyring_free(&kr);
	printf("wrote %s\n", path);
}

static gid_t keys_gid(const char *dir)
{
	const char *name = cfg_str("keys_group");
	struct stat st;
	struct group *g;

	if (*name != '\0') {
		if ((g = getgrnam(name)) == NULL)
			cli_die("keys_group: no group '%s'", name);
		return g->gr_gid;
	}
	if (stat(dir, &st) != 0)
		cli_die("%s: %s", dir, strerror(errno));
	return st.st_gid;
}

static void write_pem(const char *dir, const char *kid, EVP_PKEY *k,
    int private)
{
	char path[4200], tmp[4300];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/%s.%s", dir, kid,
	    private ? "key" : "pub");
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    private ? 0600 : 0644);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
		cli_die("%s: %s", tmp, strerror(errno));
	/* The group first, then the mode that lets it read. */
	if (fchown(fd, (uid_t)-1, keys_gid(dir)) != 0)
		cli_die("%s: cannot give it group %d: %s", tmp,
		    (int)keys_gid(dir), strerror(errno));
	if (fchmod(fd, private ? 0640 : 0644) != 0 ||
	    (private ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL,
	    NULL) : PEM_write_PUBKEY(f, k)) != 1 || fflush(f) != 0 ||
	    fsync(fd) != 0)
		cli_die("%s: write failed", tmp);
	fclose(f);
	if (rename(tmp, path) != 0)
		cli_die("%s: %s", path, strerror(errno));
}

/* A new key pair in keys_dir of --alg (default key_alg); its kid (the JWK
 * thumbprint) into kid, its algorithm's name into *alg. */
static void new_key(const struct cli_opts *o, char kid[64], const char **alg)
{
	const char *dir = keys_dir();
	EVP_PKEY *k;

	*alg = cli_opt(o, "alg") ? cli_opt(o, "alg") :
	    cfg_str("key_alg");
	if (strcmp(*alg, "ES256") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (strcmp(*alg, "EdDSA") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		cli_die("--alg must be ES256 or EdDSA");
	if (k == NULL || jws_thumbprint(k, kid, 64) != 0)
		cli_die("key generation failed");
	mkdirs(dir, 0750);
	/* The private key first: once the public one is there, programs
	 * load the pair. */
	write_pem(dir, kid, k, 1);
	write_pem(dir, kid, k, 0);
	EVP_PKEY_free(k);
}

/* The KID positional of activate and retire. */
static const char *kid_arg(const struct cli_cmd *c, const struct cli_opts *o)
{
	const char *kid = o->npos == 1 ? o->pos[0] : NULL;
	size_t i, n = kid != NULL ? strlen(kid) : 0;

	for (i = 0; i < n && (isalnum((unsigned char)kid[i]) ||
	    kid[i] == '-' || kid[i] == '_'); i++)
		;
	if (n == 0 || n >= JWS_KID_MAX || i < n)
		cli_die("usage: licctl keys %s KID (licctl keys list)", c->verb);
	return kid;
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
static void activate(const char *kid)
{
	const char *dir = keys_dir();
	char path[4200], line[80];
	EVP_PKEY *k;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.key", dir, kid);
	if ((f = fopen(path, "r")) == NULL)
		cli_die("no key %s in %s (licctl keys list)", kid, dir);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL || jws_key_alg(k) == 0)
		cli_die("%s: not a signing key licd can use", path);
	EVP_PKEY_free(k);
	snprintf(path, sizeof(path), "%s/%s.pub", dir, kid);
	if (access(path, R_OK) != 0)
		cli_die("%s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/current", dir);
	snprintf(line, sizeof(line), "%s\n", kid);
	write_file(path, line, 0644);
}

int keys_generate(const struct cli_cmd *c, const struct cli_opts *o)
{
	char path[4200], kid[64];
	const char *alg;

	(void)c;
	snprintf(path, sizeof(path), "%s/current", keys_dir());
	if (access(path, F_OK) == 0) {
		printf("a current signing key exists; nothing generated "
		    "(use add and activate for a new one)\n");
	} else {
		new_key(o, kid, &alg);
		activate(kid);
		printf("new %s signing key %s is current\n", alg, kid);
	}
	write_jwks();
	return 0;
}

/* A new key, published; with sign it signs from now on. */
static int add(const struct cli_opts *o, int sign)
{
	char kid[64];
	const char *alg;

	new_key(o, kid, &alg);
	if (sign)
		activate(kid);
	write_jwks();
	if (sign)
		printf("new %s signing key %s is current; reload the programs "
		    "(SIGHUP)\n", alg, kid);
	else
		printf("new %s key %s published; make it sign with: "
		    "licctl keys activate %s\n", alg, kid, kid);
	return 0;
}

int keys_add(const struct cli_cmd *c, const struct cli_opts *o)
{
	(void)c;
	return add(o, 0);
}

int keys_activate(const struct cli_cmd *c, const struct cli_opts *o)
{
	const char *kid = kid_arg(c, o);

	activate(kid);
	write_jwks();
	printf("%s is current; reload the programs (SIGHUP) for them to sign "
	    "with it\n", kid);
	return 0;
}

int keys_retire(const struct cli_cmd *c, const struct cli_opts *o)
{
	const char *kid = kid_arg(c, o), *dir = keys_dir();
	char path[4200], cur[JWS_KID_MAX + 2];

	current_kid(cur);
	if (strcmp(cur, kid) == 0)
		cli_die("%s is the current key; activate another one first",
		    kid);
	snprintf(path, sizeof(path), "%s/%s.pub", dir, kid);
	if (access(path, F_OK) != 0)
		cli_die("no key %s in %s", kid, dir);
	if (unlink(path) != 0)
		cli_die("%s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s.key", dir, kid);
	if (unlink(path) != 0 && errno != ENOENT)
		cli_die("%s: %s", path, strerror(errno));
	write_jwks();
	printf("%s retired; reload the programs (SIGHUP)\n", kid);
	return 0;
}

int keys_rotate(const struct cli_cmd *c, const struct cli_opts *o)
{
	(void)c;
	return add(o, 1);
}

int keys_jwks(const struct cli_cmd *c, const struct cli_opts *o)
{
	(void)c;
	(void)o;
	write_jwks();
	return 0;
}

int keys_list(const struct cli_cmd *c, const struct cli_opts *o)
{
	struct jws_keyring kr;
	char err[512];
	size_t i;

	(void)c;
	(void)o;
	if (jws_keyring_load(keys_dir(), &kr, err, sizeof(err)) != 0)
		cli_die("%s", err);
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
int keys_token_create(const struct cli_cmd *c, const struct cli_opts *o)
{
	unsigned char rnd[32];
	char token[64], hash[65];
	const char *name;
	size_t i;

	if (o->npos != 1)
		return cli_usage(c);
	name = o->pos[0];
	for (i = 0; name[i]; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' &&
		    name[i] != '_')
			cli_die("token names are [A-Za-z0-9_-]");
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		cli_die("no randomness");
	jws_b64url_encode(rnd, sizeof(rnd), token);
	auth_hash_hex(token, hash);
	printf("token:  %s\nconfig: admin_tokens = %s:%s\n", token, name, hash);
	fprintf(stderr, "licctl: the token is shown only now; store it "
	    "safely.\n");
	return 0;
}
