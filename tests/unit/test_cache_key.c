/* cache_key: which key a license-cache entry may answer (cache.h,
 * lic_key_id_tag): a key the verified-key cache does not hold is answered
 * from an entry filled for its exact text under the current key ring;
 * another text of the same license (another signature, the high-S twin
 * of the stored one) is not; a ring change voids every entry's tag, a
 * retired kid is refused before any entry is read, and the license's
 * notification (a changed license_key notifies it) drops its entries. */
#include "cache.h"
#include "conffile.h"
#include "config.h"
#include "keyfile.h"
#include "lic.h"
#include "unit.h"

#include <json-c/json.h>
#include <openssl/bn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define L1 "11111111-1111-4111-8111-111111111111"
#define C1 "22222222-2222-4222-8222-222222222222"

static char dir[] = "/tmp/licd-unit-XXXXXX";

static long long mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct lic lic(void)
{
	struct lic l;

	memset(&l, 0, sizeof(l));
	snprintf(l.id, sizeof(l.id), L1);
	snprintf(l.customer_id, sizeof(l.customer_id), C1);
	snprintf(l.plan, sizeof(l.plan), "pro");
	snprintf(l.status, sizeof(l.status), "active");
	l.features = json_tokener_parse("[]");
	l.limits = json_tokener_parse("{}");
	l.domains = json_tokener_parse("[]");
	return l;
}

static char *sign(long long iat)
{
	struct lic l = lic();
	char *key = NULL;

	CHECK(lic_sign_key(&l, iat, &key) == LIC_OK);
	lic_free(&l);
	return key;
}

/* What call.c's remember() stores after a lookup vouched for the key. */
static void fill(const struct lic_keytag *tag)
{
	struct lic l = lic();
	struct cache_fill f = { L1, "i1", &l, 1, 1, NULL, NULL, NULL, tag, 0, 0, 0, 0 };

	cache_put(cache_ticket(L1), &f);
	lic_free(&l);
}

/* What call.c's from_cache() asks of a call with key: LIC_OK and the
 * entry may answer it (1), the entry may not (0); -1: no license id. */
static int answers(const char *key, int *known)
{
	const struct cache_entry *e;
	struct lic_keytag tag;
	char id[LIC_UUID_LEN + 1];
	int ok;

	if (lic_key_id_tag(key, id, known, &tag) != LIC_OK)
		return -1;
	CHECK(strcmp(id, L1) == 0 && tag.gen != 0);
	if ((e = cache_get(id, "i1")) == NULL)
		return 0;
	ok = *known || cache_key_ok(e, &tag);
	cache_release(e);
	return ok;
}

static struct lic_keytag tag_of(const char *key)
{
	struct lic_keytag tag;
	char id[LIC_UUID_LEN + 1];
	int known;

	CHECK(lic_key_id_tag(key, id, &known, &tag) == LIC_OK);
	return tag;
}

/* The same signature with s replaced by n - s (P-256's order): the
 * high-S twin, which verifies too. */
static char *twin_of(const char *key)
{
	static const char n_hex[] = "FFFFFFFF00000000FFFFFFFFFFFFFFFF"
	    "BCE6FAADA7179E84F3B9CAC2FC632551";
	const char *dot = strrchr(key, '.');
	unsigned char sig[JWS_SIG_LEN + 3];
	BIGNUM *n = NULL, *s;
	char *out;
	size_t head = (size_t)(dot - key) + 1;

	CHECK(jws_b64url_decode(dot + 1, strlen(dot + 1), sig, sizeof(sig)) ==
	    JWS_SIG_LEN);
	BN_hex2bn(&n, n_hex);
	s = BN_bin2bn(sig + 32, 32, NULL);
	BN_sub(s, n, s);
	BN_bn2binpad(s, sig + 32, 32);
	BN_free(s);
	BN_free(n);
	out = malloc(head + 100);
	memcpy(out, key, head);
	out[head + jws_b64url_encode(sig, JWS_SIG_LEN, out + head)] = '\0';
	return out;
}

/* A key signed by the current ring over claims as given. */
static char *sign_claims(const char *claims)
{
	char *key = NULL;

	CHECK(jws_sign(lic_keyring(), "JWT", claims, strlen(claims), &key) ==
	    JWS_OK);
	return key;
}

/* lic_key_id reads the license id from the first bytes of a key laid
 * out as licd signs it, else from its parsed claims; what it reads is a
 * claim the row must still confirm. */
static void key_id_ways(const char *k1)
{
	char id[LIC_UUID_LEN + 1], *k;
	int known;

	/* licd's layout, never seen: the id without the verified-key cache */
	CHECK(lic_keys_reload() == 0);
	CHECK(lic_key_id(k1, id, &known) == LIC_OK && !known &&
	    strcmp(id, L1) == 0);
	/* Another claim order: parsed, the same id. */
	k = sign_claims("{\"sub\":\"" L1 "\",\"iss\":\"licd-unit\"}");
	CHECK(lic_key_id(k, id, &known) == LIC_OK && strcmp(id, L1) == 0);
	free(k);
	/* Spaces after the colons: parsed, the same id. */
	k = sign_claims("{\"iss\": \"licd-unit\", \"sub\": \"" L1 "\"}");
	CHECK(lic_key_id(k, id, &known) == LIC_OK && strcmp(id, L1) == 0);
	free(k);
	/* Another issuer, in the layout or not: refused. */
	k = sign_claims("{\"iss\":\"licd-unix\",\"sub\":\"" L1 "\"}");
	CHECK(lic_key_id(k, id, &known) == LIC_INVALID && id[0] == '\0');
	free(k);
	k = sign_claims("{\"iss\":\"licd-unit-2\",\"sub\":\"" L1 "\"}");
	CHECK(lic_key_id(k, id, &known) == LIC_INVALID);
	free(k);
	/* Not a UUID where the id goes, or cut short: refused. */
	k = sign_claims("{\"iss\":\"licd-unit\",\"sub\":"
	    "\"11111111-1111-4111-8111-11111111111g\"}");
	CHECK(lic_key_id(k, id, &known) == LIC_INVALID && id[0] == '\0');
	free(k);
	k = sign_claims("{\"iss\":\"licd-unit\",\"sub\":"
	    "\"11111111-1111-4111-8111-1111111111111\"}");
	CHECK(lic_key_id(k, id, &known) == LIC_INVALID);
	free(k);
	k = sign_claims("{\"iss\":\"licd-unit\",\"sub\":\"1\"}");
	CHECK(lic_key_id(k, id, &known) == LIC_INVALID);
	free(k);
	/* The layout's bytes and then anything, even text that is not
	 * JSON: the id is read, and the row refuses the key (it is not the
	 * stored key and its signature is not over licd's claims). */
	k = sign_claims("{\"iss\":\"licd-unit\",\"sub\":\"" L1 "\",\"x\":");
	CHECK(lic_key_id(k, id, &known) == LIC_OK && strcmp(id, L1) == 0);
	CHECK(lic_key_confirm(k, L1, k1) == LIC_INVALID);
	free(k);
	/* The stored key with its payload's last part changed, signature
	 * kept: the id is read, the row refuses it. */
	k = strdup(k1);
	*(strrchr(k, '.') - 2) ^= 1;
	CHECK(lic_key_id(k, id, &known) == LIC_OK && strcmp(id, L1) == 0);
	CHECK(lic_key_confirm(k, L1, k1) == LIC_INVALID);
	free(k);
	/* Not a token at all. */
	CHECK(lic_key_id("a.b", id, &known) == LIC_INVALID);
	CHECK(lic_key_id("", id, &known) == LIC_INVALID);
}

/* lic_uuid_pack takes only the form the database writes: lowercase hex,
 * dashed; unpack gives it back. */
static void uuid_forms(void)
{
	unsigned char b[16];
	char back[LIC_UUID_LEN + 1];
	const char *id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

	CHECK(lic_uuid_pack(id, b) == 0 && b[0] == 0x0f && b[15] == 0xf0);
	lic_uuid_unpack(b, back);
	CHECK(strcmp(back, id) == 0);
	CHECK(lic_uuid_pack("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", b) == -1);
	CHECK(lic_uuid_pack("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fA", b) == -1);
	CHECK(lic_uuid_pack("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg", b) == -1);
	CHECK(lic_uuid_pack("0f1e2d3c4-b5a-6978-8796-a5b4c3d2e1f0", b) == -1);
	CHECK(lic_uuid_pack("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f", b) == -1);
	CHECK(lic_uuid_pack("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f00", b) == -1);
	CHECK(lic_uuid_pack(NULL, b) == -1);
}

int main(void)
{
	const struct cache_entry *e;
	struct lic_keytag t1, t2;
	char conf[UNIT_CONF_PATH], text[128], kid1[64], kid2[64], cmd[600];
	char id[LIC_UUID_LEN + 1];
	char *k1, *k1b, *twin, *k2;
	EVP_PKEY *pk;
	long long b;
	FILE *f;
	int known;

	uuid_forms();
	if (mkdtemp(dir) == NULL)
		return 1;
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unit_write_key(dir, pk, kid1, sizeof(kid1), 1);
	EVP_PKEY_free(pk);
	snprintf(text, sizeof(text), "keys_dir = %s\nissuer = licd-unit\n", dir);
	CHECK(unit_load_conf(text, conf, cmd, sizeof(cmd)) == 0);
	CHECK(lic_init_keys(cmd, sizeof(cmd)) == 0);
	CHECK(cache_table_init(64) == 0);
	cache_fence(mono() + 600000, 0);

	k1 = sign(1000);
	k1b = sign(1001);	/* another key of the same license */
	key_id_ways(k1);

	/* A key this process never saw: not known, no entry yet. */
	CHECK(answers(k1, &known) == 0 && !known);
	/* The lookup's row vouches for it (as issued); the confirmation puts
	 * it in the verified-key cache: a ring reload empties that. */
	CHECK(lic_key_confirm(k1, L1, k1) == LIC_OK);
	CHECK(lic_key_id_tag(k1, id, &known, &t1) == LIC_OK && known);
	CHECK(lic_keys_reload() == 0);
	CHECK(lic_key_id_tag(k1, id, &known, &t1) == LIC_OK && !known);
	fill(&t1);

	/* Hit without the verified-key cache: the entry's tag is the key's. */
	CHECK(answers(k1, &known) == 1 && !known);
	CHECK(answers(k1, &known) == 1 && !known);

	/* Another signature naming the same license is not answered from
	 * the entry. */
	CHECK(answers(k1b, &known) == 0 && !known);
	/* A tag of no key matches nothing; one bit off matches not. */
	memset(&t2, 0, sizeof(t2));
	CHECK(!lic_keytag_match(&t2, &t2));
	t2 = t1;
	t2.digest[LIC_KEYTAG_LEN - 1] ^= 1;
	CHECK(lic_keytag_match(&t1, &t1) && !lic_keytag_match(&t1, &t2));

	/* The twin: a license whose stored key predates low-S signatures
	 * holds the high-S text; the row vouches for that text byte for byte
	 * and the entry is filled for it. Its low-S twin (k1, which
	 * verifies) is refused by the row (lic_key_confirm) and not answered
	 * from the entry either. */
	twin = twin_of(k1);
	CHECK(strcmp(twin, k1) != 0);
	CHECK(lic_verify_key_full(twin, id, NULL) == LIC_INVALID);
	CHECK(lic_key_confirm(twin, L1, twin) == LIC_OK);
	t2 = tag_of(twin);
	fill(&t2);
	CHECK(answers(twin, &known) == 1 && known);
	CHECK(answers(k1, &known) == 0 && !known);
	CHECK(lic_key_confirm(k1, L1, twin) == LIC_INVALID);

	/* A ring change (SIGHUP) voids the entry's tag; the entry answers
	 * again once filled under the new ring. */
	fill(&t1);
	CHECK(answers(k1, &known) == 1 && !known);
	CHECK(lic_keys_reload() == 0);
	t2 = tag_of(k1);
	CHECK(t2.gen != t1.gen &&
	    memcmp(t2.digest, t1.digest, LIC_KEYTAG_LEN) == 0);
	CHECK(answers(k1, &known) == 0 && !known);
	fill(&t2);
	CHECK(answers(k1, &known) == 1 && !known);

	/* The license's key changes (its UPDATE notifies the license's id,
	 * sql/functions/99_triggers.sql): its entries are dropped. */
	CHECK(cache_apply(L1, &b) == 0);
	CHECK(answers(k1, &known) == 0 && cache_count() == 0);
	fill(&t2);
	CHECK(answers(k1, &known) == 1);

	/* A retired kid: a key it signed, filled under the ring that had
	 * it, is refused once the ring is reloaded without it, before any
	 * entry is read. */
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unit_write_key(dir, pk, kid2, sizeof(kid2), 1);
	EVP_PKEY_free(pk);
	CHECK(lic_keys_reload() == 0);
	k2 = sign(1002);
	CHECK(lic_keyring()->signer != NULL &&
	    strcmp(lic_keyring()->signer->kid, kid2) == 0);
	t2 = tag_of(k2);
	fill(&t2);
	CHECK(answers(k2, &known) == 1 && !known);
	snprintf(cmd, sizeof(cmd), "%s/current", dir);
	f = fopen(cmd, "w");
	fprintf(f, "%s\n", kid1);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "rm -f %s/%s.key %s/%s.pub", dir, kid2,
	    dir, kid2);
	CHECK(system(cmd) == 0);
	CHECK(answers(k2, &known) == 1);	/* not reloaded yet */
	CHECK(lic_keys_reload() == 0);
	CHECK(lic_key_id_tag(k2, id, &known, &t2) == LIC_INVALID);
	CHECK(answers(k2, &known) == -1);
	/* The stale entry's tag answers no other key either. */
	CHECK(answers(k1, &known) == 0);

	/* An entry too large for its 16-bit offsets is not stored (the
	 * call takes the database path). */
	{
		char *big = malloc(70000);
		struct lic l = lic();
		struct cache_fill f = { L1, "i2", &l, 1, 1, NULL, NULL, big,
		    NULL, 0, 0, 0, 0 };

		memset(big, 'x', 69999);
		big[69999] = '\0';
		cache_put(cache_ticket(L1), &f);
		CHECK(cache_get(L1, "i2") == NULL);
		big[60000] = '\0';
		cache_put(cache_ticket(L1), &f);
		e = cache_get(L1, "i2");
		CHECK(e != NULL);
		cache_release(e);
		lic_free(&l);
		free(big);
	}

	free(k1);
	free(k1b);
	free(twin);
	free(k2);
	cache_table_init(0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	UNIT_DONE("cache_key");
}
