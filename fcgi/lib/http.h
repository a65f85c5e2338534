/*
 * http: the FastCGI server every program runs. It owns the accept loop
 * (threads with FCGX_Accept_r, optionally under a prefork master that
 * respawns children), routing on DOCUMENT_URI, the contract's request
 * checks (method, content type, body size, JSON object) and error shape,
 * the request id, and the one log line per request. Handlers only see a
 * parsed request and fill a response.
 *
 * A request lives in one of a fixed set of contexts per process: one per
 * thread, or <program>_requests in a program that defers. A handler
 * that hands its request to a batch calls http_defer() and returns; its
 * thread takes the next request at once instead of sleeping until the
 * batch has run, and the batch's thread answers with http_done(), or
 * passes the rest to http_resume() when it must wait on the database
 * itself.
 */
#ifndef LICD_HTTP_H
#define LICD_HTTP_H

#include <stddef.h>
#include <time.h>
#include <fcgiapp.h>
#include <json-c/json.h>

#include "db.h"
#include "json.h"

#define HTTP_RID_MAX 64

struct http_req {
	FCGX_Request *fcgi;
	const char *method;
	const char *path;		/* DOCUMENT_URI */
	const char *query;		/* QUERY_STRING, "" if none */
	const char *param;		/* path after a prefix route, else "" */
	char rid[HTTP_RID_MAX + 1];
	/* raw body, NUL-terminated; the worker's, until the handler
	 * returns or defers (a deferred request keeps json only) */
	char *body;
	size_t body_len;
	struct json_object *json;	/* parsed body for JSON routes */
	struct db *db;			/* this worker's connection */
	time_t now;
	/* filled by the handler for the log line (never a secret) */
	const char *log_code;
	char log_subject[80];
	void *ctx;			/* http.c's */
};

struct http_resp {
	int status;
	struct json_object *body;	/* owned; serialised and put */
	const char *allow;		/* Allow header for 405 */
	const char *www_auth;		/* WWW-Authenticate for 401 */
	const char *set_cookie;		/* Set-Cookie (console sessions) */
};

typedef void (*http_handler)(struct http_req *, struct http_resp *);

/* A route matches path exactly, or as a prefix when prefix is set (the
 * rest is req->param). methods: "POST", "GET", or "GET,POST". body:
 * HTTP_BODY_NONE, _JSON (content type + JSON object required for POST),
 * _JSON_OPT (the same, or no body at all: req->json NULL) or _RAW (bytes
 * as sent, e.g. webhooks). */
enum http_body { HTTP_BODY_NONE, HTTP_BODY_JSON, HTTP_BODY_RAW,
	HTTP_BODY_JSON_OPT	/* like JSON, but an empty body is allowed */
};

struct http_route {
	const char *path;
	int prefix;
	const char *methods;
	enum http_body body;
	http_handler fn;
};

struct http_program {
	const char *name;
	const struct http_route *routes;
	size_t nroutes;
	const struct db_stmt *stmts;
	size_t nstmts;
	size_t max_body;		/* default 16 KiB */
	int (*init)(void);		/* once per process before serving */
	void (*fini)(void);		/* once per process after the last request */
	int (*reload)(void);		/* on SIGHUP, in each serving process */
	/* After a handler that answered on its own thread, before the
	 * answer is sent (http_after_write). */
	void (*after)(struct http_req *req, struct http_resp *resp);
	void (*sync)(void);		/* on SIGHUP after reload: write what
					 * is held back, return when written */
	/* Its handlers call http_defer: requests in flight beyond its
	 * threads. And http_resume: the resume threads. */
	int defers;
	int resumes;
	/* malloc arenas (M_ARENA_MAX) of the serving process; 0: glibc's,
	 * fewer for many threads (http.c, cap_arenas) */
	int arenas;
};

/* The program's main (HTTP_PROGRAM): -c CONFIG, the configuration and
 * the log, prog->init, the TCP listener (<program>_listen), then serves
 * on fd 0 (threads, under a prefork master when processes > 1) until
 * stopped. The exit status: 0 after a clean stop (or --help), 1 when it
 * could not start or serve, 2 for a bad command line. */
int http_main(int argc, char **argv, const struct http_program *prog);

/* An http_program's `after` for a program that changes licenses (the
 * admin API, webhooks, checkout): after any request but a GET or a
 * refusal (4xx), waits for the license caches' barrier (db_cache_sync),
 * so that validate and heartbeat answer the change from the next call
 * on. */
void http_after_write(struct http_req *req, struct http_resp *resp);

/* A program's main(): its file's `routes` and `stmts` tables and the
 * other http_program fields, e.g.
 * HTTP_PROGRAM(.name = "usage", .init = lic_init_verifier). */
#define HTTP_PROGRAM(...)						\
int main(int argc, char **argv)						\
{									\
	static const struct http_program prog = {			\
		.routes = routes,					\
		.nroutes = sizeof(routes) / sizeof(routes[0]),		\
		.stmts = stmts,						\
		.nstmts = sizeof(stmts) / sizeof(stmts[0]),		\
		__VA_ARGS__						\
	};								\
	return http_main(argc, argv, &prog);				\
}

/*
 * The request's own CGI parameters, checked as hostile input (a program's
 * socket may be reached without nginx): REQUEST_METHOD 1-16 of [A-Z],
 * DOCUMENT_URI starting with '/', at most HTTP_PATH_MAX bytes of UTF-8
 * without control characters, CONTENT_LENGTH absent or decimal digits.
 * Returns 0 when the request goes on to route->fn, else the answer's
 * status (400 BAD_REQUEST, 404, 405, 413, 415) with code and msg. Any of
 * the strings may be NULL. Pure: no I/O.
 */
#define HTTP_METHOD_MAX 16
#define HTTP_PATH_MAX 2048
struct http_check {
	int status;
	const char *code, *msg;
	const struct http_route *route;	/* matched route (also for 405) */
	const char *param;		/* path after a prefix route */
	int read_body;			/* a body to read and check */
};
int http_check(const struct http_route *routes, size_t nroutes,
    const char *method, const char *path, const char *ctype, const char *clen,
    size_t max_body, struct http_check *out);

/* Response helpers. http_error formats the contract's error object. */
void http_json(struct http_resp *resp, int status, struct json_object *body);
void http_error(struct http_resp *resp, int status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void http_field_error(struct http_resp *resp, const struct js_err *err);
/* Maps a db_exec failure to 503 SERVICE_UNAVAILABLE or 500 INTERNAL. */
void http_db_error(struct http_req *req, struct http_resp *resp, int st,
    const char *what);

/* Deferred answers. http_defer, called by a handler on its own thread
 * before it hands the request on, says the handler will not answer on
 * return; from then on req and its response may be answered from any
 * thread, once, with http_done, which writes resp, logs the line and
 * frees the request's context. http_resume runs fn(req, resp) on one of
 * the program's resume threads (http_program.resumes), with that thread's
 * connection in req->db, and then answers: for the rest of a deferred
 * request that must wait on the database (a write), which the thread
 * answering a batch must not. fn may call http_defer again and hand the
 * request on (an activation's batch, activate.h): then http_done answers
 * it. */
void http_defer(struct http_req *req);
void http_done(struct http_req *req);
void http_resume(struct http_req *req, http_handler fn);

/* HTTP_SCRATCH bytes, suitably aligned, that live as long as the request
 * (a deferred one's handler state). */
#define HTTP_SCRATCH 1024
void *http_scratch(struct http_req *req);

/* CGI parameter from nginx, NULL if absent. */
const char *http_param(const struct http_req *req, const char *name);

/* GET /healthz for any program. */
void http_healthz(struct http_req *req, struct http_resp *resp);

/* 1 when rid is 1-64 chars of [A-Za-z0-9._-]. */
int http_rid_valid(const char *rid);

#endif
