/*
 * log: one line per event, written with a single write(2) to an O_APPEND
 * file so lines from threads and processes never interleave. Callers never
 * pass secrets (keys, tokens, signatures) to these functions.
 */
#ifndef LICD_LOG_H
#define LICD_LOG_H

int log_init(const char *program);
void log_msg(const char *level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_info(...) log_msg("info", __VA_ARGS__)
#define log_warn(...) log_msg("warn", __VA_ARGS__)
#define log_error(...) log_msg("error", __VA_ARGS__)

#endif
