/*
 * state: the files of one license in the state directory. The state file
 * holds the lease (re-verified on every load), the clock high-water mark,
 * the last refusal licd answered and the nonce of a pending offline
 * request. Written 0600 through a temporary file, fsync and rename, so a
 * reader sees the old or the new file, never a torn one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/rand.h>

#include "internal.h"

char *lcl_read_file(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat sb;
	char *buf = NULL;
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    (size_t)sb.st_size > max)
		goto fail;
	max = (size_t)sb.st_size;	/* what grows meanwhile is not read */
	if ((buf = malloc(max + 1)) == NULL)
		goto fail;
	while (n < max && (r = read(fd, buf + n, max - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

int lcl_write_atomic(const char *path, const char *data, size_t len)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	unsigned char rnd[6];
	char tag[9];
	size_t off = 0;
	ssize_t w;
	int fd, dfd, rc = -1;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	lcl_b64url_encode(rnd, sizeof(rnd), tag);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%s.tmp", path, tag) >=
	    sizeof(tmp) || strlen(path) >= sizeof(dir))
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0)
		return -1;
	while (off < len) {
		w = write(fd, data + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		off += (size_t)w;
	}
	if (fchmod(fd, 0600) != 0 || lcl_fsync(fd) != 0)
		goto out;
	if (close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto out;
	/* The rename itself survives a crash once the directory is synced. */
	memcpy(dir, path, strlen(path) + 1);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		memcpy(dir, ".", 2);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		lcl_fsync(dfd);
		close(dfd);
	}
	return 0;
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

void lcl_state_free(struct lcl_state *st)
{
	free(st->lease);
	memset(st, 0, sizeof(*st));
}

static int get_i64(struct json_object *o, const char *k, int64_t *v)
{
	struct json_object *x;

	if (!json_object_object_get_ex(o, k, &x))
		return 0;
	if (!json_object_is_type(x, json_type_int) ||
	    json_object_get_int64(x) < 0)
		return -1;
	*v = json_object_get_int64(x);
	return 0;
}

static int get_str(struct json_object *o, const char *k, char *dst,
    size_t cap)
{
	struct json_object *x;
	const char *s;

	if (!json_object_object_get_ex(o, k, &x) ||
	    json_object_is_type(x, json_type_null))
		return 0;
	if (!json_object_is_type(x, json_type_string) ||
	    strlen(s = json_object_get_string(x)) >= cap)
		return -1;
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

int lcl_state_parse(const char *text, size_t len, struct lcl_state *st)
{
	struct json_tokener *t = json_tokener_new();
	struct json_object *o = NULL, *x;
	int rc = -1;

	memset(st, 0, sizeof(*st));
	if (t == NULL || len > (size_t)INT_MAX)
		goto out;
	o = json_tokener_parse_ex(t, text, (int)len);
	if (o == NULL || json_tokener_get_error(t) != json_tokener_success ||
	    !json_object_is_type(o, json_type_object))
		goto out;
	if (!json_object_object_get_ex(o, "licd_state", &x) ||
	    !json_object_is_type(x, json_type_int) ||
	    json_object_get_int(x) != 1)
		goto out;
	if (get_i64(o, "hwm", &st->hwm) != 0 ||
	    get_i64(o, "refreshed_at", &st->refreshed_at) != 0 ||
	    get_i64(o, "verdict_at", &st->verdict_at) != 0 ||
	    get_i64(o, "gen", &st->gen) != 0 ||
	    get_str(o, "verdict", st->verdict, sizeof(st->verdict)) != 0 ||
	    get_str(o, "pending_nonce", st->pending_nonce,
	    sizeof(st->pending_nonce)) != 0)
		goto out;
	/* The floating seat the lease holds; absent on node-locked leases
	 * and in files written before floating seats existed. */
	if (json_object_object_get_ex(o, "seat", &x)) {
		struct json_object *b = NULL;

		if (!json_object_is_type(x, json_type_object) ||
		    get_i64(x, "heartbeat_in", &st->seat_hb) != 0 ||
		    get_i64(x, "borrowed_until", &st->borrowed_until) != 0 ||
		    (json_object_object_get_ex(x, "overdraft", &b) &&
		    !json_object_is_type(b, json_type_boolean)))
			goto out;
		st->overdraft = b != NULL && json_object_get_boolean(b);
	}
	if (json_object_object_get_ex(o, "lease", &x) &&
	    !json_object_is_type(x, json_type_null)) {
		if (!json_object_is_type(x, json_type_string) ||
		    (st->lease = strdup(json_object_get_string(x))) == NULL)
			goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		lcl_state_free(st);
	json_object_put(o);
	if (t != NULL)
		json_tokener_free(t);
	return rc;
}

int lcl_state_read(const char *path, struct lcl_state *st)
{
	size_t len;
	char *txt = lcl_read_file(path, 64 * 1024, &len);
	int rc;

	memset(st, 0, sizeof(*st));
	if (txt == NULL)
		return -1;
	rc = lcl_state_parse(txt, len, st);
	free(txt);
	return rc;
}

int lcl_state_write(const char *path, const struct lcl_state *st)
{
	struct json_object *o = json_object_new_object();
	const char *txt;
	int rc;

	json_object_object_add(o, "licd_state", json_object_new_int(1));
	json_object_object_add(o, "lease", st->lease ?
	    json_object_new_string(st->lease) : NULL);
	json_object_object_add(o, "gen", json_object_new_int64(st->gen));
	json_object_object_add(o, "hwm", json_object_new_int64(st->hwm));
	json_object_object_add(o, "refreshed_at",
	    json_object_new_int64(st->refreshed_at));
	if (st->verdict[0] != '\0') {
		json_object_object_add(o, "verdict",
		    json_object_new_string(st->verdict));
		json_object_object_add(o, "verdict_at",
		    json_object_new_int64(st->verdict_at));
	}
	if (st->pending_nonce[0] != '\0')
		json_object_object_add(o, "pending_nonce",
		    json_object_new_string(st->pending_nonce));
	if (st->lease != NULL && st->seat_hb > 0) {
		struct json_object *s = json_object_new_object();

		json_object_object_add(s, "heartbeat_in",
		    json_object_new_int64(st->seat_hb));
		json_object_object_add(s, "borrowed_until",
		    json_object_new_int64(st->borrowed_until));
		json_object_object_add(s, "overdraft",
		    json_object_new_boolean(st->overdraft));
		json_object_object_add(o, "seat", s);
	}
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	rc = lcl_write_atomic(path, txt, strlen(txt));
	json_object_put(o);
	return rc;
}
