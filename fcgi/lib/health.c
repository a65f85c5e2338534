/* health: see health.h. */
#include "health.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROGRAMS 16

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One program's state, kept as plain data: json-c objects are never
 * shared between threads (json.h). */
struct state {
	char name[32];
	int up;			/* it answered */
	int db_ok;
	unsigned long dropped;
	char error[128];
};

static void to_json(const struct state *s, struct json_object *o)
{
	json_object_object_add(o, "status", json_object_new_string(
	    s->up && s->db_ok ? "ok" : "unavailable"));
	if (s->up) {
		json_object_object_add(o, "database", json_object_new_string(
		    s->db_ok ? "ok" : "unreachable"));
		json_object_object_add(o, "log_dropped",
		    json_object_new_int64((int64_t)s->dropped));
	} else {
		json_object_object_add(o, "error",
		    json_object_new_string(s->error));
	}
}

static pthread_mutex_t self_mu = PTHREAD_MUTEX_INITIALIZER;
static long long self_at;
static int self_db_ok;

static void self_state(struct db *db, const char *program, struct state *s)
{
	long long now = mono_ms();

	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", program);
	s->up = 1;
	pthread_mutex_lock(&self_mu);
	if (self_at == 0 || now - self_at >= HEALTH_CACHE_MS) {
		/* while an outage lasts, db.c's backoff answers at once */
		self_db_ok = db_ping(db) == DB_OK;
		self_at = mono_ms();
	}
	s->db_ok = self_db_ok;
	pthread_mutex_unlock(&self_mu);
	s->dropped = log_dropped();
}

int health_self(struct db *db, const char *program, struct json_object **out)
{
	struct state s;

	self_state(db, program, &s);
	*out = json_object_new_object();
	json_object_object_add(*out, "program",
	    json_object_new_string(program));
	to_json(&s, *out);
	return s.db_ok;
}

/* --- a FastCGI request to a peer's socket --------------------------------- */

static size_t record(unsigned char *b, int type, const void *body,
    size_t len)
{
	b[0] = 1;		/* FCGI_VERSION_1 */
	b[1] = (unsigned char)type;
	b[2] = 0;
	b[3] = 1;		/* request id 1 */
	b[4] = (unsigned char)(len >> 8);
	b[5] = (unsigned char)len;
	b[6] = 0;		/* no padding */
	b[7] = 0;
	if (len > 0)
		memcpy(b + 8, body, len);
	return 8 + len;
}

static size_t pair(unsigned char *b, const char *k, const char *v)
{
	size_t kl = strlen(k), vl = strlen(v);

	/* short names and values only: one length byte each */
	b[0] = (unsigned char)kl;
	b[1] = (unsigned char)vl;
	memcpy(b + 2, k, kl);
	memcpy(b + 2 + kl, v, vl);
	return 2 + kl + vl;
}

/* Waits for fd to be ready for events until the deadline; 0 when it is. */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	long long left;
	int r;

	for (;;) {
		left = deadline - mono_ms();
		if (left <= 0)
			return -1;
		r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* GET uri from the FastCGI server on path; the status and the body of
 * its answer. Returns 0, or -1 with err set. */
static int fcgi_get(const char *path, const char *uri, int *status,
    char *body, size_t blen, char *err, size_t elen)
{
	unsigned char req[512], params[384], hdr[8];
	char out[4096];
	size_t n = 0, pn = 0, got = 0, off;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	long long deadline = mono_ms() + HEALTH_TIMEOUT_MS;
	const unsigned char begin[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };
	const char *p;
	int fd = -1, rc = -1, done = 0;
	ssize_t w;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, elen, "socket path too long");
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	pn += pair(params + pn, "REQUEST_METHOD", "GET");
	pn += pair(params + pn, "DOCUMENT_URI", uri);
	pn += pair(params + pn, "REQUEST_URI", uri);
	pn += pair(params + pn, "SCRIPT_NAME", uri);
	pn += pair(params + pn, "LICD_HEALTH_PROBE", "1");
	n += record(req + n, 1, begin, sizeof(begin));	/* BEGIN_REQUEST */
	n += record(req + n, 4, params, pn);		/* PARAMS */
	n += record(req + n, 4, NULL, 0);
	n += record(req + n, 5, NULL, 0);		/* STDIN, empty */

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) < 0) {
		snprintf(err, elen, "socket: %s", strerror(errno));
		return -1;
	}
	/* A full backlog is EAGAIN on a unix socket: busy, not gone. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (errno != EAGAIN && errno != EINTR) {
			snprintf(err, elen, "not running (%s)", strerror(errno));
			goto out;
		}
		if (mono_ms() >= deadline) {
			snprintf(err, elen, "not accepting (backlog full)");
			goto out;
		}
		usleep(10000);
	}
	for (off = 0; off < n; off += (size_t)w) {
		if (wait_fd(fd, POLLOUT, deadline) != 0 ||
		    (w = write(fd, req + off, n - off)) < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				w = 0;
				continue;
			}
			snprintf(err, elen, "no answer");
			goto out;
		}
	}
	/* Records: STDOUT (6) carries the answer, END_REQUEST (3) ends it. */
	while (!done) {
		size_t len, pad, i;
		unsigned char skip[256];

		for (i = 0; i < sizeof(hdr); i += (size_t)w) {
			if (wait_fd(fd, POLLIN, deadline) != 0 ||
			    (w = read(fd, hdr + i, sizeof(hdr) - i)) <= 0) {
				if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
					w = 0;
					continue;
				}
				snprintf(err, elen, "no answer");
				goto out;
			}
		}
		len = ((size_t)hdr[4] << 8) | hdr[5];
		pad = hdr[6];
		if (hdr[1] == 3)
			done = 1;
		for (i = 0; i < len + pad; i += (size_t)w) {
			unsigned char *dst;
			size_t room;

			if (hdr[1] == 6 && i < len && got < sizeof(out) - 1) {
				dst = (unsigned char *)out + got;
				room = sizeof(out) - 1 - got;
				if (room > len - i)
					room = len - i;
			} else {
				dst = skip;
				room = len + pad - i < sizeof(skip) ?
				    len + pad - i : sizeof(skip);
			}
			if (wait_fd(fd, POLLIN, deadline) != 0 ||
			    (w = read(fd, dst, room)) <= 0) {
				if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
					w = 0;
					continue;
				}
				snprintf(err, elen, "no answer");
				goto out;
			}
			if (dst != skip)
				got += (size_t)w;
		}
	}
	out[got] = '\0';
	if (strncmp(out, "Status: ", 8) != 0 ||
	    (p = strstr(out, "\r\n\r\n")) == NULL) {
		snprintf(err, elen, "bad answer");
		goto out;
	}
	*status = atoi(out + 8);
	snprintf(body, blen, "%s", p + 4);
	rc = 0;
out:
	close(fd);
	return rc;
}

static void peer_state(const char *dir, const char *name, struct state *s)
{
	char path[512], uri[64], body[2048];
	struct json_object *o = NULL, *v;
	int status;

	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(path, sizeof(path), "%s/%s.sock", dir, name);
	snprintf(uri, sizeof(uri), "/healthz/%s", name);
	if (fcgi_get(path, uri, &status, body, sizeof(body), s->error,
	    sizeof(s->error)) != 0)
		return;
	if ((o = json_tokener_parse(body)) == NULL ||
	    !json_object_object_get_ex(o, "database", &v)) {
		snprintf(s->error, sizeof(s->error), "bad answer (status %d)",
		    status);
		goto out;
	}
	s->up = 1;
	s->db_ok = status == 200 &&
	    strcmp(json_object_get_string(v), "ok") == 0;
	if (json_object_object_get_ex(o, "log_dropped", &v))
		s->dropped = (unsigned long)json_object_get_int64(v);
out:
	json_object_put(o);
}

static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
static struct state all[MAX_PROGRAMS];
static size_t nall;
static long long all_at;

/* health_programs: the programs /healthz answers for. */
static size_t programs(char names[][32], size_t max)
{
	const char *v = cfg_str("health_programs");
	size_t n = 0, len;

	while (*v && n < max) {
		len = strcspn(v, ", ");
		if (len > 0 && len < 32) {
			memcpy(names[n], v, len);
			names[n++][len] = '\0';
		}
		v += len;
		v += strspn(v, ", ");
	}
	return n;
}

/* socket_dir, else the directory of this program's own socket (fd 0):
 * the others' sockets lie beside it, else HEALTH_SOCKET_DIR. */
static const char *socket_dir(char *buf, size_t len)
{
	struct sockaddr_un sa;
	socklen_t sl = sizeof(sa);
	const char *dir = cfg_str("socket_dir");
	char *slash;

	if (dir != NULL && *dir != '\0')
		return dir;
	memset(&sa, 0, sizeof(sa));
	if (getsockname(0, (struct sockaddr *)&sa, &sl) == 0 &&
	    sa.sun_family == AF_UNIX && sa.sun_path[0] == '/' &&
	    snprintf(buf, len, "%s", sa.sun_path) < (int)len &&
	    (slash = strrchr(buf, '/')) != NULL && slash != buf) {
		*slash = '\0';
		return buf;
	}
	return HEALTH_SOCKET_DIR;
}

int health_all(struct db *db, const char *program, struct json_object **out)
{
	struct json_object *progs;
	char names[MAX_PROGRAMS][32];
	unsigned long dropped = 0;
	long long now = mono_ms();
	int ok = 1, db_ok = 1;
	size_t i, n;

	pthread_mutex_lock(&all_mu);
	if (all_at == 0 || now - all_at >= HEALTH_CACHE_MS) {
		char own[sizeof(((struct sockaddr_un *)0)->sun_path)];
		const char *dir = socket_dir(own, sizeof(own));

		n = programs(names, MAX_PROGRAMS);
		for (i = 0; i < n; i++) {
			if (strcmp(names[i], program) == 0)
				self_state(db, program, &all[i]);
			else
				peer_state(dir, names[i], &all[i]);
		}
		nall = n;
		all_at = mono_ms();
	}
	*out = json_object_new_object();
	progs = json_object_new_object();
	for (i = 0; i < nall; i++) {
		struct json_object *o = json_object_new_object();

		to_json(&all[i], o);
		json_object_object_add(progs, all[i].name, o);
		ok &= all[i].up && all[i].db_ok;
		if (all[i].up && !all[i].db_ok)
			db_ok = 0;
		dropped += all[i].dropped;
	}
	pthread_mutex_unlock(&all_mu);
	json_object_object_add(*out, "status",
	    json_object_new_string(ok ? "ok" : "unavailable"));
	json_object_object_add(*out, "database",
	    json_object_new_string(db_ok ? "ok" : "unreachable"));
	json_object_object_add(*out, "log_dropped",
	    json_object_new_int64((int64_t)dropped));
	json_object_object_add(*out, "programs", progs);
	return ok;
}
