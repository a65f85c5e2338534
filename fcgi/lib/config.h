/*
 * config: one `key = value` file (LICD_CONFIG, else /etc/licd/licd.conf),
 * every key overridable by the environment as LICD_<KEY>. Every key is a
 * row of one table (config.c) with its type, default, range and help; a
 * key that is not in the table or a value that does not parse stops the
 * load with `file:line: message`. Loaded once at start, parsed there,
 * read-only afterwards, so workers read it without locks.
 */
#ifndef LICD_CONFIG_H
#define LICD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CFG_DEFAULT_PATH "/etc/licd/licd.conf"

enum cfg_type {
	CFG_STR,
	CFG_INT,	/* whole number in [min, max]; unit in the key or `unit` */
	CFG_BOOL,	/* on/off, yes/no, true/false, 1/0 */
	CFG_ENUM,	/* one of `choices` ("ES256|EdDSA") */
	CFG_INTLIST	/* comma-separated whole numbers, each in [min, max] */
};

#define CFG_SECRET 0x1	/* masked by cfg_print */

struct cfg_key;
/* A string's form beyond its type: 0, or -1 with a message (which never
 * repeats a secret's value). */
typedef int cfg_check_fn(const struct cfg_key *k, const char *val,
    char *msg, size_t len);

struct cfg_key {
	const char *name;
	enum cfg_type type;
	int flags;
	const char *def;	/* as written in the file; "" none */
	const char *inherit;	/* unset: this key's value if it is set */
	long min, max;
	const char *choices;	/* CFG_ENUM */
	const char *unit;	/* CFG_INT: "seconds", "ms", ... (docs) */
	const char *defdoc;	/* the default in words when not a literal */
	const char *pattern;	/* per-program row: "<program>_threads" */
	const char *help;
	cfg_check_fn *check;	/* CFG_STR: its form, when it has one */
};

/* path NULL: $LICD_CONFIG, else CFG_DEFAULT_PATH. A missing default file is
 * not an error (environment-only setups); a missing named file is. Every
 * problem found is written to err, one `file:line: message` (or
 * `LICD_KEY: message` for the environment) per line; -1 if any. An empty
 * value means unset (the default); an empty environment variable is
 * ignored; a key set twice in the file takes the later line. */
int cfg_load(const char *path, char *err, size_t errlen);
const char *cfg_path(void);

/* Values after cfg_load (the defaults before). The key must be a row of
 * the table: an unknown one is a programming error and aborts. A string
 * without value or default is "" (never NULL); an integer without one
 * (a default computed by the caller, see defdoc) is 0 and cfg_set false. */
const char *cfg_str(const char *key);
long cfg_int(const char *key);
int cfg_bool(const char *key);
int cfg_set(const char *key);	/* given in the file or environment */

/* The table, for licctl config (and the unit tests). */
const struct cfg_key *cfg_keys(size_t *n);

/* Every key as `key = value  # source` with secrets masked (and the
 * password of a conninfo or URL); cfg_mask is that masking of one value. */
void cfg_print(FILE *out);
void cfg_mask(const struct cfg_key *k, const char *val, char *out,
    size_t len);
/* README's configuration table, generated from the table. */
void cfg_markdown(FILE *out);

#endif
