/*
 * config: one `key = value` file (LICD_CONFIG, else /etc/licd/licd.conf),
 * every key overridable by the environment as LICD_<KEY>. Loaded once at
 * start, read-only afterwards, so workers read it without locks.
 */
#ifndef LICD_CONFIG_H
#define LICD_CONFIG_H

#include <stddef.h>

#define CFG_DEFAULT_PATH "/etc/licd/licd.conf"

/* path NULL: $LICD_CONFIG, else CFG_DEFAULT_PATH. A missing default file is
 * not an error (environment-only setups); a missing named file is. */
int cfg_load(const char *path, char *err, size_t errlen);
const char *cfg_str(const char *key, const char *def);
long cfg_int(const char *key, long def);
const char *cfg_path(void);

#endif
