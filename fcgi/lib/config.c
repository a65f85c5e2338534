/* config: see config.h. Values are kept as strings; parsing is per lookup,
 * which is only done at start-up or outside the request path. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX 128

struct cfg_entry {
	char *key;
	char *val;
};

static struct cfg_entry cfg_entries[CFG_MAX];
static size_t cfg_n;
static char cfg_file[4096];

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int cfg_set(const char *key, const char *val)
{
	size_t i;
	char *v;

	for (i = 0; i < cfg_n; i++) {
		if (strcmp(cfg_entries[i].key, key) == 0) {
			if ((v = strdup(val)) == NULL)
				return -1;
			free(cfg_entries[i].val);
			cfg_entries[i].val = v;
			return 0;
		}
	}
	if (cfg_n == CFG_MAX)
		return -1;
	cfg_entries[cfg_n].key = strdup(key);
	cfg_entries[cfg_n].val = strdup(val);
	if (!cfg_entries[cfg_n].key || !cfg_entries[cfg_n].val)
		return -1;
	cfg_n++;
	return 0;
}

int cfg_load(const char *path, char *err, size_t errlen)
{
	FILE *f;
	char line[4096];
	int lineno = 0, named = 1, rc = -1;

	if (path == NULL)
		path = getenv("LICD_CONFIG");
	if (path == NULL || *path == '\0') {
		path = CFG_DEFAULT_PATH;
		named = 0;
	}
	snprintf(cfg_file, sizeof(cfg_file), "%s", path);
	if ((f = fopen(path, "r")) == NULL) {
		if (!named && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s, *eq, *key, *val;

		lineno++;
		s = trim(line);
		if (*s == '#' || *s == '\0')
			continue;
		if ((eq = strchr(s, '=')) == NULL) {
			snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
			goto out;
		}
		*eq = '\0';
		key = trim(s);
		/* "key = value   # comment": a # after whitespace ends it. */
		for (val = eq + 1; *val; val++)
			if (*val == '#' && val > eq + 1 &&
			    (val[-1] == ' ' || val[-1] == '\t')) {
				*val = '\0';
				break;
			}
		val = trim(eq + 1);
		if (*key == '\0' || cfg_set(key, val) != 0) {
			snprintf(err, errlen, "%s:%d: bad or too many keys", path, lineno);
			goto out;
		}
	}
	rc = 0;
out:
	fclose(f);
	return rc;
}

const char *cfg_path(void)
{
	return cfg_file;
}

const char *cfg_str(const char *key, const char *def)
{
	char env[128];
	const char *v;
	size_t i, n;

	n = (size_t)snprintf(env, sizeof(env), "LICD_%s", key);
	for (i = 5; i < n && i < sizeof(env); i++)
		env[i] = (char)toupper((unsigned char)env[i]);
	if ((v = getenv(env)) != NULL)
		return v;
	for (i = 0; i < cfg_n; i++)
		if (strcmp(cfg_entries[i].key, key) == 0)
			return cfg_entries[i].val;
	return def;
}

long cfg_int(const char *key, long def)
{
	const char *v = cfg_str(key, NULL);
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return def;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return def;
	return n;
}
