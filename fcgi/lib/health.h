/*
 * health: what GET /healthz answers, cheap enough to probe every second.
 *
 * Every program answers GET /healthz/<program> for itself (nginx routes
 * each to its program): its database, checked with a ping at most once
 * per HEALTH_CACHE_MS per process (inside db.c's reconnect backoff not
 * even that), and the log lines it could not write (log.h).
 *
 * GET /healthz (served by validate) answers for all of them in one object:
 * its own state, and each other program's /healthz/<program> asked over
 * that program's FastCGI socket (<socket_dir>/<program>.sock; socket_dir
 * defaults to the directory of the program's own socket), all at
 * most once per HEALTH_CACHE_MS; 503 when a program does not answer or
 * the database is unreachable. The probes are not logged.
 */
#ifndef LICD_HEALTH_H
#define LICD_HEALTH_H

#include <json-c/json.h>

#include "db.h"

#define HEALTH_CACHE_MS 1000
#define HEALTH_TIMEOUT_MS 1000	/* per program asked */
#define HEALTH_SOCKET_DIR "/run/licd"

/* This program's state as a new object; returns 1 when healthy. */
int health_self(struct db *db, const char *program, struct json_object **out);

/* Every program's state; returns 1 when all are healthy. */
int health_all(struct db *db, const char *program, struct json_object **out);

#endif
