/*
 * log: one line per event, written with write(2) to an O_APPEND file in
 * whole lines, so lines from threads and processes never interleave.
 * Callers never pass secrets (keys, tokens, signatures) to these
 * functions.
 *
 * A FastCGI program may buffer its info lines (log_buffer_start), as
 * nginx's `access_log ... buffer= flush=` does: a write per request is
 * a syscall and a lock on the file shared by every program. Buffered
 * lines reach the file within flush_ms, when the buffer fills, before any
 * warn/error line (which is never buffered) and at log_buffer_stop; a
 * process that crashes loses at most flush_ms of info lines.
 */
/*
 * The file can be rotated: log_reopen (on SIGHUP or SIGUSR1 in the
 * FastCGI programs, as nginx does) opens log_file again and puts it in
 * place of the old descriptor, so no line is lost or split between the
 * two. A line that cannot be written (a full disk, an unwritable file) is
 * counted: log_dropped() for /healthz, a note on stderr (the journal in
 * production) at most every LOG_DROP_REPORT_SECS, and a warning in the
 * log itself once it can be written again.
 */
#ifndef LICD_LOG_H
#define LICD_LOG_H

#include <stddef.h>

/* Once per process, after the configuration: lines carry program's name;
 * log_file is opened for appending (0640), stderr when it is unset or
 * "-". 0, or -1 with the reason on stderr. */
int log_init(const char *program);
/* Starts buffering info lines in this process (0 = never); call after
 * fork, from the process that serves. */
int log_buffer_start(long flush_ms);
/* Writes what is buffered and stops buffering. */
void log_buffer_stop(void);
/* Opens log_file again (after a rotation); 0 when logging to stderr. */
int log_reopen(void);
/* Lines this program could not write since it started (its processes
 * forked after log_init share the count). */
unsigned long log_dropped(void);
#define LOG_DROP_REPORT_SECS 10

/* One line at level. The formatted message is escaped before it is
 * written (log_escape): control characters and bytes that are not UTF-8
 * as \xNN, a backslash as \\, so no field can end its line or forge
 * another. */
void log_msg(const char *level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* s with control characters, DEL, bytes that are not well-formed UTF-8
 * as \xNN and '\\' doubled, into out (cap bytes, NUL-terminated,
 * truncated); returns the length written. */
size_t log_escape(const char *s, char *out, size_t cap);
/* A field from outside (a URL path, a method) for a log line: bytes
 * outside printable ASCII, space, '%', '"' and '\\' percent-encoded, so the
 * field is one word; "-" for NULL or empty; truncated with "..." to fit
 * buf (n bytes). Returns buf or a constant. */
const char *log_field(const char *s, char *buf, size_t n);

#define log_info(...) log_msg("info", __VA_ARGS__)
#define log_warn(...) log_msg("warn", __VA_ARGS__)
#define log_error(...) log_msg("error", __VA_ARGS__)

#endif
