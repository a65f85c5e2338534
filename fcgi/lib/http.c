/* http: see http.h. */
#include "http.h"
#include "config.h"
#include "health.h"
#include "json.h"
#include "jwt.h"
#include "log.h"
#include "utf8.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>


#define MAX_THREADS 64
#define MAX_REQUESTS 1024
#define MAX_PROCS 32
/* How long a connection may go silent in the middle of its request. */
#define HTTP_RECV_TIMEOUT_S 5
/* How long an answer may wait for the front to read it: a front that
 * stops reading would otherwise hold the worker until TCP gives up (on a
 * unix socket, forever). */
#define HTTP_SEND_TIMEOUT_S 5

static long clamp(long v, long lo, long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static const struct http_program *prog;
static size_t max_body;

struct worker {
	pthread_t tid;
	struct db *db;
	/* The body is read into its worker's buffer, not its request's: a
	 * request that defers keeps its parsed JSON only, and 16 KiB per
	 * request in flight would be mostly untouched, yet a page or two of
	 * each resident. */
	char *buf;		/* max_body + 1 */
};

/* One request in flight, on a worker, deferred or resumed. */
struct ctx {
	struct http_req req;
	struct http_resp resp;
	FCGX_Request fcgi;
	struct timespec t0;
	int probe;		/* LICD_HEALTH_PROBE: not logged */
	http_handler resume_fn;
	struct ctx *next;	/* on the free list or the resume queue */
	union {
		max_align_t align;
		char bytes[HTTP_SCRATCH];
	} scratch;
};

static atomic_int stopping;

/* The epoll set the workers wait on (next_connection); -1 when libfcgi
 * accepts. */
static int proc_ep = -1;
static void park(int fd);

/* Free contexts. A worker takes one before it accepts; when none is free
 * (every one deferred), it waits for an answer to free one. */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static struct ctx *pool;
static int pool_waiting;

/* Deferred requests whose rest waits on the database (http_resume). */
static pthread_mutex_t rq_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rq_cv = PTHREAD_COND_INITIALIZER;
static struct ctx *rq_head, *rq_tail;
static int rq_stop, resumers;

/* Set by http_defer on the thread running the handler. */
static _Thread_local int deferred;

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return status < 500 ? "Error" : "Internal Server Error";
	}
}

void http_json(struct http_resp *resp, int status, struct json_object *body)
{
	if (resp->body != NULL)
		json_object_put(resp->body);
	resp->status = status;
	resp->body = body;
}

void http_error(struct http_resp *resp, int status, const char *code,
    const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	struct json_object *e = json_object_new_object();
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	js_put(e, "code", json_object_new_string(code));
	js_put(e, "message", json_object_new_string(msg));
	js_put(o, "error", e);
	http_json(resp, status, o);
}

void http_field_error(struct http_resp *resp, const struct js_err *err)
{
	int status = strcmp(err->code, "INTERNAL") == 0 ? 500 : 400;

	http_error(resp, status, err->code, "%s", err->msg);
}

void http_db_error(struct http_req *req, struct http_resp *resp, int st,
    const char *what)
{
	if (st == DB_BUSY) {
		http_error(resp, 503, "SERVICE_UNAVAILABLE",
		    "the license is busy (locked elsewhere), retry later");
		return;
	}
	if (st != DB_ERROR) {
		http_error(resp, 503, "SERVICE_UNAVAILABLE",
		    "the database is unavailable, retry later");
		return;
	}
	log_error("rid=%s %s failed", req->rid, what);
	http_error(resp, 500, "INTERNAL", "internal error");
}

const char *http_param(const struct http_req *req, const char *name)
{
	return FCGX_GetParam(name, req->fcgi->envp);
}

int http_rid_valid(const char *rid)
{
	size_t i, n;

	if (rid == NULL)
		return 0;
	n = strlen(rid);
	if (n < 1 || n > HTTP_RID_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = rid[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

void http_healthz(struct http_req *req, struct http_resp *resp)
{
	struct json_object *o;
	int ok;

	/* /healthz: every program's state (health.h); /healthz/<program>:
	 * this one's. */
	if (strcmp(req->path, "/healthz") == 0)
		ok = health_all(req->db, prog->name, &o);
	else
		ok = health_self(req->db, prog->name, &o);
	http_json(resp, ok ? 200 : 503, o);
	if (!ok)
		req->log_code = "SERVICE_UNAVAILABLE";
}

/* rid: LICD_REQUEST_ID, the id nginx resolved ($licd_request_id); checked
 * again since a program may be reached without nginx, and generated
 * otherwise. */
static void request_id(struct http_req *req, const char *rid)
{
	unsigned char rnd[16];
	size_t i;

	if (!http_rid_valid(rid))
		rid = http_param(req, "HTTP_X_REQUEST_ID");
	if (http_rid_valid(rid)) {
		snprintf(req->rid, sizeof(req->rid), "%s", rid);
		return;
	}
	/* the kernel's, not OpenSSL's: a request id needs no DRBG, and a
	 * program that has not set OpenSSL up yet (lic_init_deferred) is
	 * spared it for a probe */
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(req->rid + 2 * i, 3, "%02x", rnd[i]);
}

/* m is exactly one of the comma-separated methods; m itself was checked
 * to be a non-empty token (http_check). */
static int method_allowed(const char *methods, const char *m)
{
	size_t n = strlen(m);
	const char *p = methods, *e;

	for (;;) {
		e = strchr(p, ',');
		if ((size_t)((e ? e : p + strlen(p)) - p) == n &&
		    strncmp(p, m, n) == 0)
			return 1;
		if (e == NULL)
			return 0;
		p = e + 1;
	}
}

/* application/json, any case, optional parameters (charset=utf-8 only). */
static int json_content_type(const char *ct)
{
	const char *p;
	size_t n = strlen("application/json");

	if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
		return 0;
	p = ct + n;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return 1;
	if (*p != ';')
		return 0;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	return strncasecmp(p, "charset=utf-8", 13) == 0 &&
	    (p[13] == '\0' || p[13] == ' ' || p[13] == ';');
}

/* Well-formed UTF-8 without control characters (C0, DEL). */
static int text_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	while (*p) {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((n = utf8_len(p)) == 0)
			return 0;
		p += n;
	}
	return 1;
}

/* CONTENT_LENGTH: absent, or 1-19 decimal digits; -1 when malformed. */
static int content_length(const char *cl, unsigned long long *v)
{
	size_t i, n;

	*v = 0;
	if (cl == NULL || *cl == '\0')
		return 0;
	n = strlen(cl);
	if (n > 19)
		return -1;
	for (i = 0; i < n; i++) {
		if (cl[i] < '0' || cl[i] > '9')
			return -1;
		*v = *v * 10 + (unsigned long long)(cl[i] - '0');
	}
	return 0;
}

int http_check(const struct http_route *routes, size_t nroutes,
    const char *method, const char *path, const char *ctype, const char *clen,
    size_t max_body, struct http_check *out)
{
	unsigned long long len;
	size_t i, n;
	int clen_ok;

	memset(out, 0, sizeof(*out));
	out->code = "BAD_REQUEST";
	out->status = 400;
	n = method != NULL ? strlen(method) : 0;
	if (n == 0 || n > HTTP_METHOD_MAX) {
		out->msg = "malformed request method";
		return out->status;
	}
	for (i = 0; i < n; i++)
		if (method[i] < 'A' || method[i] > 'Z') {
			out->msg = "malformed request method";
			return out->status;
		}
	if (path == NULL || path[0] != '/' || strlen(path) > HTTP_PATH_MAX ||
	    !text_ok(path)) {
		out->msg = "malformed request path";
		return out->status;
	}
	for (i = 0; i < nroutes; i++) {
		const struct http_route *r = &routes[i];

		n = strlen(r->path);
		if (r->prefix ? strncmp(path, r->path, n) == 0 :
		    strcmp(path, r->path) == 0) {
			out->route = r;
			out->param = path + (r->prefix ? n : strlen(path));
			break;
		}
	}
	if (out->route == NULL) {
		out->status = 404;
		out->code = "NOT_FOUND";
		out->msg = "no such endpoint";
		return out->status;
	}
	if (!method_allowed(out->route->methods, method)) {
		out->status = 405;
		out->code = "METHOD_NOT_ALLOWED";
		out->msg = "method not allowed";
		return out->status;
	}
	clen_ok = content_length(clen, &len) == 0;
	if (out->route->body == HTTP_BODY_JSON_OPT && clen_ok && len == 0)
		return out->status = 0;
	if (out->route->body == HTTP_BODY_NONE || strcmp(method, "POST") != 0)
		return out->status = 0;
	if (out->route->body != HTTP_BODY_RAW && !json_content_type(ctype)) {
		out->status = 415;
		out->code = "UNSUPPORTED_MEDIA_TYPE";
		out->msg = "Content-Type must be application/json";
		return out->status;
	}
	if (!clen_ok) {
		out->msg = "malformed Content-Length";
		return out->status;
	}
	if (len > max_body) {
		out->status = 413;
		out->code = "PAYLOAD_TOO_LARGE";
		out->msg = "request body too large";
		return out->status;
	}
	out->read_body = 1;
	return out->status = 0;
}

/* Reads the body in a loop (CONTENT_LENGTH was checked); -1 when larger
 * than the limit. */
static int read_body(struct worker *w, struct http_req *req)
{
	size_t total = 0;
	int n;

	for (;;) {
		n = FCGX_GetStr(w->buf + total, (int)(max_body + 1 - total),
		    req->fcgi->in);
		if (n <= 0)
			break;
		total += (size_t)n;
		if (total > max_body)
			return -1;
	}
	w->buf[total] = '\0';
	req->body = w->buf;
	req->body_len = total;
	return 0;
}

/* v in decimal, in buf[24]; returns buf. */
static const char *decimal(char buf[24], unsigned long v)
{
	char *p = buf + 23;

	*p = '\0';
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	return memmove(buf, p, (size_t)(buf + 24 - p));
}

static void put(FCGX_Stream *out, const char *s)
{
	FCGX_PutStr(s, (int)strlen(s), out);
}

static void put_header(FCGX_Stream *out, const char *name, const char *value)
{
	if (value == NULL)
		return;
	put(out, name);
	put(out, value);
	put(out, "\r\n");
}

/* The head goes into libfcgi's output buffer piece by piece, without a
 * format: every answer writes one. */
static void write_response(struct http_req *req, struct http_resp *resp)
{
	FCGX_Stream *out = req->fcgi->out;
	const char *body;
	size_t blen = 0;
	char num[24];

	if (resp->body == NULL)
		http_error(resp, 500, "INTERNAL", "no response");
	body = js_dump(resp->body, &blen);
	put(out, "Status: ");
	put(out, decimal(num, (unsigned long)resp->status));
	put(out, " ");
	put(out, reason(resp->status));
	put(out, "\r\nContent-Type: application/json\r\n"
	    "Cache-Control: no-store\r\nX-Request-Id: ");
	put(out, req->rid);
	put(out, "\r\nContent-Length: ");
	put(out, decimal(num, (unsigned long)blen + 1));
	put(out, "\r\n");
	/* every 503 is a fault that passes: tell clients when to retry */
	if (resp->status == 503)
		put(out, "Retry-After: 1\r\n");
	put_header(out, "Allow: ", resp->allow);
	put_header(out, "WWW-Authenticate: ", resp->www_auth);
	put_header(out, "Set-Cookie: ", resp->set_cookie);
	put(out, "\r\n");
	FCGX_PutStr(body, (int)blen, out);
	FCGX_PutStr("\n", 1, out);
}

static const char *error_code(const struct http_resp *resp)
{
	struct json_object *e, *c;

	if (resp->body != NULL &&
	    json_object_object_get_ex(resp->body, "error", &e) &&
	    json_object_object_get_ex(e, "code", &c))
		return json_object_get_string(c);
	return "-";
}

static void ctx_put(struct ctx *c)
{
	int wake;

	pthread_mutex_lock(&pool_mu);
	c->next = pool;
	pool = c;
	wake = pool_waiting > 0;
	pthread_mutex_unlock(&pool_mu);
	if (wake)
		pthread_cond_signal(&pool_cv);
}

/* NULL once the program is stopping. */
static struct ctx *ctx_get(void)
{
	struct ctx *c;

	pthread_mutex_lock(&pool_mu);
	while ((c = pool) == NULL && !atomic_load(&stopping)) {
		pool_waiting++;
		pthread_cond_wait(&pool_cv, &pool_mu);
		pool_waiting--;
	}
	if (c != NULL && atomic_load(&stopping))
		c = NULL;
	if (c != NULL)
		pool = c->next;
	pthread_mutex_unlock(&pool_mu);
	return c;
}

/* Writes the answer, logs the request's line and closes the connection;
 * the context is free again. */
/* Whether the request's input has been read to its end, reading what is
 * left of it (a GET's empty FCGI_STDIN record, the rest of a body too
 * large to take) up to a bound. A connection nginx keeps must be read to
 * the end: nginx takes it for its next request once the answer has come,
 * and a connection closed at that moment fails that request (502). */
static int drained(FCGX_Request *r)
{
	char sink[4096];
	int left = 1 << 20;

	while (FCGX_HasSeenEOF(r->in) != EOF && left > 0) {
		int n = FCGX_GetStr(sink, (int)sizeof(sink), r->in);

		if (n <= 0 && FCGX_HasSeenEOF(r->in) != EOF)
			return 0;	/* a read failed */
		left -= n;
	}
	return FCGX_HasSeenEOF(r->in) == EOF;
}

static void finish(struct ctx *c)
{
	struct http_req *req = &c->req;
	struct http_resp *resp = &c->resp;
	struct timespec t1;
	char mbuf[32], pbuf[512];
	int eof;

	if (resp->body == NULL)
		http_error(resp, 500, "INTERNAL", "handler gave no answer");
	write_response(req, resp);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* /healthz asking the other programs (health.h): not a request */
	if (!c->probe)
		log_info("rid=%s %s %s status=%d code=%s%s%s us=%ld", req->rid,
		    log_field(req->method, mbuf, sizeof(mbuf)),
		    log_field(req->path, pbuf, sizeof(pbuf)), resp->status,
		    req->log_code ? req->log_code : error_code(resp),
		    req->log_subject[0] ? " " : "", req->log_subject,
		    (long)((t1.tv_sec - c->t0.tv_sec) * 1000000L +
		    (t1.tv_nsec - c->t0.tv_nsec) / 1000));
	if (req->json != NULL)
		json_object_put(req->json);
	json_object_put(resp->body);
	/* Once the empty FCGI_STDIN record has been read nginx sends
	 * nothing more for this request: a connection nginx keeps is parked
	 * for its next one, any other closed at once (libfcgi's lingering
	 * close, shutdown, poll until nginx closes, read, costs three
	 * syscalls and a wait on nginx per request). A request not read to
	 * its end is never kept, its unread records would be taken for the
	 * next request's, and gets the lingering close, so unread input can
	 * never turn into a reset. */
	eof = drained(&c->fcgi);
	if (!eof || proc_ep < 0 || atomic_load(&stopping))
		c->fcgi.keepConnection = 0;
	if (eof)
		FCGX_Detach(&c->fcgi);
	FCGX_Finish_r(&c->fcgi);
	if (c->fcgi.ipcFd >= 0) {	/* kept: nginx asked, nothing failed */
		int fd = c->fcgi.ipcFd;

		c->fcgi.ipcFd = -1;
		c->fcgi.detached = 0;
		park(fd);
	}
	ctx_put(c);
}

void http_defer(struct http_req *req)
{
	(void)req;
	deferred = 1;
}

void http_done(struct http_req *req)
{
	finish(req->ctx);
}

void http_resume(struct http_req *req, http_handler fn)
{
	struct ctx *c = req->ctx;

	if (resumers == 0) {	/* a program without resume threads */
		int was = deferred;

		deferred = 0;
		fn(req, &c->resp);
		if (!deferred)
			finish(c);
		deferred = was;
		return;
	}
	c->resume_fn = fn;
	c->next = NULL;
	pthread_mutex_lock(&rq_mu);
	if (rq_tail != NULL)
		rq_tail->next = c;
	else
		rq_head = c;
	rq_tail = c;
	pthread_mutex_unlock(&rq_mu);
	pthread_cond_signal(&rq_cv);
}

void *http_scratch(struct http_req *req)
{
	return ((struct ctx *)req->ctx)->scratch.bytes;
}

/* The parameters every request reads, found in one pass over them
 * (FCGX_GetParam scans them all again for each name); the first of a
 * name counts, as there. */
struct params {
	const char *method, *path, *query, *rid, *ctype, *clen, *probe;
};

static void read_params(char **envp, struct params *p)
{
#define P(n, f) { n "=", sizeof(n), offsetof(struct params, f) }
	static const struct {
		const char *name;	/* with its '=' */
		size_t len;
		size_t off;
	} want[] = {
		P("REQUEST_METHOD", method), P("DOCUMENT_URI", path),
		P("QUERY_STRING", query), P("LICD_REQUEST_ID", rid),
		P("CONTENT_TYPE", ctype), P("CONTENT_LENGTH", clen),
		P("LICD_HEALTH_PROBE", probe),
	};
#undef P
	size_t i;

	memset(p, 0, sizeof(*p));
	for (; envp != NULL && *envp != NULL; envp++) {
		for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			const char **f = (const char **)((char *)p +
			    want[i].off);

			if ((*envp)[0] == want[i].name[0] && *f == NULL &&
			    strncmp(*envp, want[i].name, want[i].len) == 0) {
				*f = *envp + want[i].len;
				break;
			}
		}
	}
}

/* Answers the request in c, unless its handler deferred it: then c may
 * already be answered and reused by the time the handler returns. */
static void serve(struct worker *w, struct ctx *c)
{
	struct http_req *req = &c->req;
	struct http_resp *resp = &c->resp;
	const struct http_route *route;
	struct http_check chk;
	struct params prm;
	struct js_err jerr;

	clock_gettime(CLOCK_MONOTONIC, &c->t0);
	memset(req, 0, sizeof(*req));
	memset(resp, 0, sizeof(*resp));
	req->ctx = c;
	req->fcgi = &c->fcgi;
	req->db = w->db;
	req->now = time(NULL);
	read_params(c->fcgi.envp, &prm);
	c->probe = prm.probe != NULL;
	req->method = prm.method;
	req->path = prm.path;
	req->query = prm.query;
	if (req->query == NULL)
		req->query = "";
	req->param = "";
	request_id(req, prm.rid);

	/* Each program's own health (health.h), beside its routes. Method
	 * and path may be missing (http_check answers that). */
	if (req->path != NULL && req->method != NULL &&
	    strncmp(req->path, "/healthz/", 9) == 0 &&
	    strcmp(req->path + 9, prog->name) == 0) {
		if (strcmp(req->method, "GET") != 0 &&
		    strcmp(req->method, "HEAD") != 0) {
			resp->allow = "GET";
			http_error(resp, 405, "METHOD_NOT_ALLOWED",
			    "use GET for this endpoint");
			goto out;
		}
		http_healthz(req, resp);
		goto out;
	}
	/* Every parameter is checked before use: a program's socket may be
	 * reached without nginx (tests/fuzz/fuzz_request.c). */
	if (http_check(prog->routes, prog->nroutes, req->method, req->path,
	    prm.ctype, prm.clen, max_body, &chk) != 0) {
		if (chk.status == 405) {
			resp->allow = chk.route->methods;
			http_error(resp, 405, chk.code,
			    "use %s for this endpoint", chk.route->methods);
		} else if (chk.status == 413)
			http_error(resp, 413, chk.code,
			    "request body exceeds %zu bytes", max_body);
		else
			http_error(resp, chk.status, chk.code, "%s", chk.msg);
		goto out;
	}
	route = chk.route;
	req->param = chk.param;
	if (chk.read_body) {
		int json = route->body != HTTP_BODY_RAW;

		if (read_body(w, req) != 0) {
			http_error(resp, 413, "PAYLOAD_TOO_LARGE",
			    "request body exceeds %zu bytes", max_body);
			goto out;
		}
		if (json && js_parse_object(req->body, req->body_len,
		    &req->json, &jerr) != 0) {
			http_field_error(resp, &jerr);
			goto out;
		}
	}
	deferred = 0;
	route->fn(req, resp);
	/* Not a field of c from here on: another thread may be answering
	 * it already. */
	if (deferred)
		return;
	if (prog->after != NULL)
		prog->after(req, resp);
out:
	finish(c);
}

static int own_accept;

/*
 * libfcgi's accept polls every connection from a unix socket for up to
 * 2 s before taking it (is_af_unix_keeper: for web servers that connect
 * and hang up without a request); nginx never does that and always sends
 * the request at once, so the poll is one more syscall per request. The
 * connection is accepted here and handed to FCGX_Accept_r, which reads
 * the request from an already-open ipcFd as it does on a kept connection
 * (fcgiapp.c; ipcFd, keepConnection and detached are FCGX_Request fields
 * the header calls internal, unchanged throughout libfcgi 2.4). A
 * connection closed without a request, or with a broken one, is dropped
 * by libfcgi, which would then accept the next one itself: the requests
 * have no listen socket (-1), so that accept fails at once and the next
 * connection is taken here again.
 *
 * Connections nginx keeps open (fastcgi_keep_conn with an upstream
 * keepalive pool) spare both sides a socket, a connect, an accept and a
 * close per request. libfcgi would read the next request of a kept
 * connection on the thread that answered the last one, which then waits
 * for nginx, idle; here an answered kept connection goes back into the
 * process's epoll set (one-shot), beside the listeners, and whichever
 * worker is free takes the next event: a new connection or a request on
 * a kept one. No thread ever waits on an idle connection.
 *
 * <program>_listen: a TCP listener beside fd 0, for an nginx on another
 * host. The listeners are non-blocking and in every process's set, not
 * EPOLLEXCLUSIVE: that wakes the first process with an idle thread every
 * time, so one process would take every connection nginx keeps while
 * the others serve none. A new connection wakes one thread per process
 * instead and the first accept takes it (the others find none); with
 * kept connections a new one is rare.
 */
static int tcp_fd = -1;

/*
 * A kept TCP connection waits in the epoll set with no read pending, so
 * nothing here would ever notice that its front vanished without closing
 * it (a host powered off, a partition): the descriptor would stay open
 * for the process's life. Keepalive probes on the listener, which Linux
 * copies to every connection it accepts (as TCP_NODELAY), end such a
 * connection with an error event; the worker that takes it closes it.
 * Unix sockets need none: their peer's end always closes with it.
 */
#define TCP_KEEP_IDLE_S 60
#define TCP_KEEP_INTVL_S 10
#define TCP_KEEP_CNT 3

static int listen_tcp(const char *spec, char *err, size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hl;
	int fd = -1, one = 1, rc, idle = TCP_KEEP_IDLE_S,
	    intvl = TCP_KEEP_INTVL_S, cnt = TCP_KEEP_CNT;

	if (colon == NULL || colon == spec || colon[1] == '\0' ||
	    (hl = (size_t)(colon - spec)) >= sizeof(host)) {
		snprintf(err, errlen, "%s: expected ADDRESS:PORT", spec);
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
		snprintf(err, errlen, "%s: %s", spec, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
	    sizeof(idle)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
	    sizeof(intvl)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, 1024) != 0) {
		snprintf(err, errlen, "%s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* The process's epoll set over fd 0, the TCP listener if any, and the
 * kept connections waiting for their next request. */
static int proc_epoll(void)
{
	struct epoll_event ev;
	int fds[2] = { 0, tcp_fd }, i;

	if ((proc_ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -1;
	for (i = 0; i < 2 && fds[i] >= 0; i++) {
		int fl = fcntl(fds[i], F_GETFL);

		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.fd = fds[i];
		if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
		    epoll_ctl(proc_ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) {
			log_error("epoll on fd %d: %s", fds[i], strerror(errno));
			close(proc_ep);
			proc_ep = -1;
			return -1;
		}
	}
	return 0;
}

/* An answered connection nginx keeps open waits in the epoll set for its
 * next request; closed if it cannot. */
static void park(int fd)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLONESHOT;
	ev.data.fd = fd;
	/* A connection parked before is still in the set, disarmed. */
	if (epoll_ctl(proc_ep, EPOLL_CTL_MOD, fd, &ev) == 0)
		return;
	if (errno == ENOENT && epoll_ctl(proc_ep, EPOLL_CTL_ADD, fd, &ev) == 0)
		return;
	log_warn("epoll_ctl on a kept connection: %s", strerror(errno));
	close(fd);
}

/* After a failed accept4: out of descriptors or memory waits a moment
 * and tries again, as do a signal and a peer gone before it was taken;
 * 1 when the listener itself is broken. */
static int accept_broken(void)
{
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
	    errno == ENOMEM) {
		usleep(10000);
		return 0;
	}
	return errno != EINTR && errno != ECONNABORTED && errno != EAGAIN &&
	    errno != EPROTO;
}

static const struct timeval recv_timeout = { HTTP_RECV_TIMEOUT_S, 0 };
static const struct timeval send_timeout = { HTTP_SEND_TIMEOUT_S, 0 };

/* The next connection with a request to read: a new one from either
 * listener or a kept one; -1 when stopping. */
static int next_connection(void)
{
	struct epoll_event ev;
	int n, fd;

	while (!atomic_load(&stopping)) {
		n = epoll_wait(proc_ep, &ev, 1, -1);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (ev.data.fd != 0 && ev.data.fd != tcp_fd)
			return ev.data.fd;
		fd = accept4(ev.data.fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			/* nginx sends a request whole and at once; a peer
			 * that stops mid-record would otherwise hold this
			 * worker forever. */
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &recv_timeout,
			    sizeof(recv_timeout));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout,
			    sizeof(send_timeout));
			return fd;
		}
		if (accept_broken())
			return -1;
	}
	return -1;
}

static int next_request(FCGX_Request *r)
{
	int fd, rc;

	if (proc_ep < 0)	/* fd 0 is not a unix socket: libfcgi's accept */
		return FCGX_Accept_r(r);
	for (;;) {
		if (r->ipcFd < 0) {
			if ((fd = next_connection()) < 0)
				return -1;
			r->ipcFd = fd;
			/* not closed by FCGX_Accept_r's own FCGX_Finish_r */
			r->keepConnection = 1;
		}
		rc = FCGX_Accept_r(r);
		if (rc >= 0 || atomic_load(&stopping))
			return rc;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct ctx *c;

	while ((c = ctx_get()) != NULL) {
		if (next_request(&c->fcgi) < 0) {
			ctx_put(c);
			break;
		}
		serve(w, c);
	}
	/* Per-thread parsers live as long as the thread. */
	js_thread_end();
	jws_thread_end();
	return NULL;
}

/* Runs the rest of deferred requests that wait on the database; at the
 * stop, once the workers are gone, empties the queue first. */
static void *resumer_main(void *arg)
{
	struct worker *w = arg;
	struct ctx *c;

	for (;;) {
		pthread_mutex_lock(&rq_mu);
		while (rq_head == NULL && !rq_stop)
			pthread_cond_wait(&rq_cv, &rq_mu);
		if ((c = rq_head) != NULL && (rq_head = c->next) == NULL)
			rq_tail = NULL;
		pthread_mutex_unlock(&rq_mu);
		if (c == NULL)
			break;
		c->req.db = w->db;
		/* fn may defer the request again (http_defer), to be answered
		 * by another thread's http_done. */
		deferred = 0;
		c->resume_fn(&c->req, &c->resp);
		if (!deferred)
			finish(c);
	}
	js_thread_end();
	jws_thread_end();
	return NULL;
}

static void on_wake(int sig)
{
	(void)sig;	/* only interrupts accept(2) */
}

static int is_unix_socket(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	return getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    ss.ss_family == AF_UNIX;
}

/* Waits for a thread, nudging it out of accept(2) with SIGUSR2 until it
 * has left: a signal landing just before the call would be lost. */
static void stop_thread(pthread_t tid)
{
	while (pthread_kill(tid, SIGUSR2) == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(tid, NULL, &ts) == 0)
			break;
	}
}

/*
 * glibc gives each thread its own malloc arena, up to 8 per CPU, and each
 * arena keeps the pages it once touched. That fits threads that compute;
 * a program given many threads (`<program>_threads`) has most of them
 * waiting on PostgreSQL, and at most a few run at once. Four arenas per
 * CPU keep less resident without slowing it; fewer made one hot
 * license's calls contend for an arena (docs/PERFORMANCE.md).
 * Programs with fewer threads than that are unchanged, unless they ask
 * for fewer arenas (http_program.arenas), and so is a MALLOC_ARENA_MAX
 * the operator set.
 */
static void cap_arenas(long threads)
{
	long cap = 4 * sysconf(_SC_NPROCESSORS_ONLN);

	if (getenv("MALLOC_ARENA_MAX") != NULL)
		return;
	if (prog->arenas > 0 && (cap < 1 || prog->arenas < cap))
		cap = prog->arenas;
	else if (threads <= cap)
		return;
	if (cap >= 1)
		mallopt(M_ARENA_MAX, (int)cap);
}

/* A connection of this program's threads, with its session timeouts. */
static struct db *thread_db(void)
{
	struct db *db = db_new(prog->stmts, prog->nstmts);
	char key[64];

	if (db == NULL)
		return NULL;
	snprintf(key, sizeof(key), "%s_lock_timeout_ms", prog->name);
	db_set_timeouts(db, cfg_int(key), cfg_int("statement_timeout_ms"));
	return db;
}

/* One process: N threads accepting on fd 0 until SIGTERM/SIGINT; with
 * deferred handlers, more requests in flight than threads, and the
 * resume threads. */
static int run_threads(void)
{
	struct worker *ws = NULL, *rs = NULL;
	struct ctx *cs = NULL;
	struct sigaction sa;
	sigset_t set;
	char key[64];
	long nthreads, nctx, nres = 0, i, started = 0, rstarted = 0;
	int sig, rc = 1;

	/* <program>_threads overrides threads. A program that defers holds
	 * no thread while the database works for it, so it needs one per
	 * core and one for the thread waiting on the database, whatever
	 * `threads` says; more only add wake-ups (docs/PERFORMANCE.md). */
	snprintf(key, sizeof(key), "%s_threads", prog->name);
	nthreads = cfg_set(key) || !prog->defers ? cfg_int(key) :
	    sysconf(_SC_NPROCESSORS_ONLN) + 1;
	nthreads = clamp(nthreads, 1, MAX_THREADS);
	nctx = nthreads;
	if (prog->defers) {
		snprintf(key, sizeof(key), "%s_requests", prog->name);
		nctx = clamp(cfg_int(key), nthreads + 1, MAX_REQUESTS);
	}
	if (prog->resumes) {
		snprintf(key, sizeof(key), "%s_resume_threads", prog->name);
		nres = clamp(cfg_int(key), 1, MAX_THREADS);
	}
	cap_arenas(nthreads + nres);
	if (FCGX_Init() != 0) {
		log_error("FCGX_Init failed");
		return 1;
	}
	own_accept = is_unix_socket(0);
	if ((own_accept || tcp_fd >= 0) && proc_epoll() != 0)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wake;	/* no SA_RESTART: accept gets EINTR */
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* blocked before any thread starts, so libfcgi's own SIGUSR1 handler
	 * (stop accepting) never runs: SIGUSR1 reopens the log, as nginx's */
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if ((ws = calloc((size_t)nthreads, sizeof(*ws))) == NULL ||
	    (cs = calloc((size_t)nctx, sizeof(*cs))) == NULL ||
	    (nres > 0 && (rs = calloc((size_t)nres, sizeof(*rs))) == NULL))
		goto out;
	for (i = 0; i < nctx; i++) {
		if (FCGX_InitRequest(&cs[i].fcgi, tcp_fd >= 0 || own_accept ?
		    -1 : 0, 0) != 0) {
			log_error("cannot set up request %ld", i);
			goto out;
		}
		ctx_put(&cs[i]);
	}
	/* Before the workers start: they read whether lines are buffered
	 * without a lock (log.h). */
	if (log_buffer_start(cfg_int("log_flush_ms")) != 0)
		log_warn("cannot start the log flusher; writing each line");
	for (i = 0; i < nres; i++, rstarted++) {
		if ((rs[i].db = thread_db()) == NULL ||
		    pthread_create(&rs[i].tid, NULL, resumer_main, &rs[i]) != 0) {
			log_error("cannot start resume thread %ld", i);
			goto stop;
		}
	}
	resumers = (int)nres;
	for (i = 0; i < nthreads; i++, started++) {
		if ((ws[i].buf = malloc(max_body + 1)) == NULL ||
		    (ws[i].db = thread_db()) == NULL ||
		    pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
			log_error("cannot start worker %ld", i);
			goto stop;
		}
	}
	log_info("serving with %ld threads", nthreads);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			sig = SIGTERM;
		if (sig != SIGHUP && sig != SIGUSR1)
			break;
		/* SIGHUP: reload the keys, reopen the log, write what is held
		 * back (sync); SIGUSR1 (as nginx): reopen the log only. */
		if (sig == SIGHUP && prog->reload != NULL)
			prog->reload();
		log_reopen();	/* after logrotate moved the file */
		if (sig == SIGHUP && prog->sync != NULL) {
			prog->sync();
			log_info("SIGHUP: queued writes written");
		}
	}
	log_info("signal %d: finishing requests in flight", sig);
	rc = 0;
stop:
	FCGX_ShutdownPending();
	atomic_store(&stopping, 1);
	pthread_mutex_lock(&pool_mu);
	pthread_cond_broadcast(&pool_cv);
	pthread_mutex_unlock(&pool_mu);
	/* The workers first: a deferred request is answered by the thread
	 * that ran its batch, which is a worker, or handed on to a resume
	 * thread before that worker leaves. */
	for (i = 0; i < started; i++)
		stop_thread(ws[i].tid);
	pthread_mutex_lock(&rq_mu);
	rq_stop = 1;
	pthread_cond_broadcast(&rq_cv);
	pthread_mutex_unlock(&rq_mu);
	for (i = 0; i < rstarted; i++)
		pthread_join(rs[i].tid, NULL);
	if (prog->fini != NULL)
		prog->fini();
	log_buffer_stop();
out:
	for (i = 0; ws != NULL && i < nthreads; i++) {
		db_free(ws[i].db);
		free(ws[i].buf);
	}
	for (i = 0; rs != NULL && i < nres; i++)
		db_free(rs[i].db);
	for (i = 0; cs != NULL && i < nctx; i++)
		FCGX_Free(&cs[i].fcgi, cs[i].fcgi.ipcFd >= 0);
	free(ws);
	free(rs);
	free(cs);
	return rc;
}

static volatile sig_atomic_t master_stop, master_reopen;

static void on_master_signal(int sig)
{
	if (sig == SIGHUP || sig == SIGUSR1)
		master_reopen = sig;
	else if (sig != SIGCHLD)	/* SIGCHLD only wakes sigsuspend */
		master_stop = 1;
}

/* Prefork master: keeps `processes` children alive, so a crashed or killed
 * worker process is replaced at once (spawn-fcgi does not respawn). */
static int run_master(long nproc)
{
	pid_t kids[MAX_PROCS] = { 0 };
	time_t started[MAX_PROCS] = { 0 };
	struct sigaction sa;
	sigset_t block, orig;
	pid_t master = getpid(), pid;
	int status;
	long i;

	/* The signals are blocked but while the master sleeps in sigsuspend,
	 * so none can land between a check of the flags and the sleep. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &orig);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_master_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	while (!master_stop) {
		for (i = 0; i < nproc && !master_stop; i++) {
			if (kids[i] != 0)
				continue;
			/* A child dying at once must not spin the CPU. */
			if (started[i] != 0 && time(NULL) - started[i] < 1)
				sleep(1);
			pid = fork();
			if (pid == 0) {
				signal(SIGTERM, SIG_DFL);
				signal(SIGINT, SIG_DFL);
				signal(SIGHUP, SIG_DFL);
				signal(SIGUSR1, SIG_DFL);
				signal(SIGCHLD, SIG_DFL);
				/* Die with the master: workers nobody supervises
				 * keep serving, hold the socket and a second
				 * start would run beside them. A master that died
				 * before prctl is caught by the parent check. */
				if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 ||
				    getppid() != master)
					_exit(1);
				sigprocmask(SIG_SETMASK, &orig, NULL);
				_exit(run_threads());
			}
			if (pid > 0) {
				kids[i] = pid;
				started[i] = time(NULL);
			} else {
				log_error("fork: %s", strerror(errno));
			}
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			for (i = 0; i < nproc; i++) {
				if (kids[i] != pid)
					continue;
				kids[i] = 0;
				if (!master_stop)
					log_warn("worker %d exited (status %d); "
					    "restarting", (int)pid, status);
			}
		}
		if (master_reopen) {
			int sig = master_reopen;

			/* the master's own lines, then its workers' */
			master_reopen = 0;
			log_reopen();
			for (i = 0; i < nproc; i++)
				if (kids[i] != 0)
					kill(kids[i], sig);
			continue;
		}
		for (i = 0; i < nproc && kids[i] != 0; i++)
			;
		if (i == nproc && !master_stop)
			sigsuspend(&orig);
	}
	for (i = 0; i < nproc; i++)
		if (kids[i] != 0)
			kill(kids[i], SIGTERM);
	for (i = 0; i < nproc; i++)
		if (kids[i] != 0)
			waitpid(kids[i], NULL, 0);
	return 0;
}

int http_main(int argc, char **argv, const struct http_program *p)
{
	const char *conf = NULL;
	char err[512], cerr[4096], key[64];
	long nproc;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			conf = argv[++i];
		} else {
			fprintf(stderr,
			    "usage: %s [-c config]\n"
			    "FastCGI program of licd; accepts on fd 0 (spawn-fcgi "
			    "or a systemd socket unit).\n"
			    "Config: -c, else $LICD_CONFIG, else %s.\n",
			    p->name, CFG_DEFAULT_PATH);
			return strcmp(argv[i], "-h") == 0 ||
			    strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	prog = p;
	if (cfg_load(conf, cerr, sizeof(cerr)) != 0) {
		fprintf(stderr, "%s\n%s: the configuration is not valid; "
		    "not started\n", cerr, p->name);
		return 1;
	}
	if (log_init(p->name) != 0)
		return 1;
	max_body = p->max_body ? p->max_body : 16384;
	jws_lib_init();
	/* Once, before forking: children share the loaded keys. */
	if (p->init != NULL && p->init() != 0)
		return 1;
	snprintf(key, sizeof(key), "%s_listen", p->name);
	if (*cfg_str(key) != '\0') {
		int fl = fcntl(0, F_GETFL), on = 0;
		socklen_t len = sizeof(on);

		/* Both listeners or none: a program that cannot accept on
		 * fd 0 stops here, not in its threads. */
		if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0 ||
		    !on) {
			fprintf(stderr, "%s: %s needs a listening socket on fd 0 "
			    "(spawn-fcgi or a systemd socket unit)\n", p->name,
			    key);
			return 1;
		}
		if ((tcp_fd = listen_tcp(cfg_str(key), err,
		    sizeof(err))) < 0) {
			log_error("%s: %s", key, err);
			fprintf(stderr, "%s: %s: %s\n", p->name, key, err);
			return 1;
		}
		if (fl < 0 || fcntl(0, F_SETFL, fl | O_NONBLOCK) != 0) {
			log_error("%s: fd 0 is not a listening socket", key);
			return 1;
		}
		log_info("listening on %s as well", cfg_str(key));
	}
	nproc = cfg_int("processes");
	if (nproc > MAX_PROCS)
		nproc = MAX_PROCS;
	if (nproc > 1)
		return run_master(nproc);
	return run_threads();
}

void http_after_write(struct http_req *req, struct http_resp *resp)
{
	int st;

	/* A refusal (4xx: a bad token, field or state) changed nothing, and
	 * an unauthenticated caller must not make the barrier's wait on
	 * every process cheap to ask for; a 503 is a database that could
	 * not be reached or waited on, where the barrier would fail the same
	 * way. */
	if (strcmp(req->method, "GET") == 0 || req->db == NULL ||
	    (resp->status >= 400 && resp->status < 500) ||
	    resp->status == 503)
		return;
	/* The change is committed whatever the barrier says: its answer
	 * stands (a retried issue or create would be done twice). */
	if ((st = db_cache_sync(req->db)) != DB_OK)
		log_warn("license cache barrier failed (%d): the change may "
		    "be answered from memory until the caches' fence", st);
}
