/* conffile: a configuration text loaded as the programs load their file,
 * for the tests that need one: written to a new file under /tmp, read by
 * cfg_load and removed. */
#ifndef LICD_UNIT_CONFFILE_H
#define LICD_UNIT_CONFFILE_H

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define UNIT_CONF_PATH 32

/* cfg_load's result for text, its message in err; path receives the
 * file's name, which the messages name. -1 when no file could be made. */
static inline int unit_load_conf(const char *text, char path[UNIT_CONF_PATH],
    char *err, size_t errlen)
{
	FILE *f;
	int fd, rc;

	snprintf(path, UNIT_CONF_PATH, "/tmp/licd-unit-conf.XXXXXX");
	if ((fd = mkstemp(path)) < 0)
		return -1;
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(path);
		return -1;
	}
	fputs(text, f);
	fclose(f);
	rc = cfg_load(path, err, errlen);
	unlink(path);
	return rc;
}

#endif
