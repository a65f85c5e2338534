/* log: see log.h. */
#include "log.h"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static char log_prog[32] = "licd";
/* glibc does not cache getpid(); on a request path where every syscall
 * counts, the pid is kept here and refreshed in a forked child. */
static pid_t log_pid;

static void log_atfork_child(void)
{
	log_pid = getpid();
}

int log_init(const char *program)
{
	const char *path = cfg_str("log_file", NULL);
	int fd;

	snprintf(log_prog, sizeof(log_prog), "%s", program);
	log_pid = getpid();
	pthread_atfork(NULL, NULL, log_atfork_child);
	if (path == NULL || *path == '\0' || strcmp(path, "-") == 0)
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot open log %s: %s\n", program, path,
		    strerror(errno));
		return -1;
	}
	log_fd = fd;
	return 0;
}

void log_msg(const char *level, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n, m;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d] %s ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), log_prog,
	    (int)(log_pid != 0 ? log_pid : getpid()), level);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(log_fd, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}
