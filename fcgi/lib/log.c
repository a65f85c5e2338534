/* log: see log.h. */
#include "log.h"
#include "config.h"
#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
#define LINE_MAX_LEN 2048
static size_t format(char *line, const char *level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static char log_path[4096];

/* Lines not written: counted when lost, reported apart from the lines.
 * In memory shared by the processes forked after log_init (a prefork
 * master's workers), so that the count is the program's. */
struct drops {
	atomic_ulong dropped, noted;
	atomic_llong reported;	/* monotonic seconds */
};
static struct drops own_drops, *drops = &own_drops;

/* Buffered info lines (log.h); buf_on is read without the lock only to
 * choose the path, set before any worker thread starts. */
static pthread_mutex_t buf_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t buf_cv = PTHREAD_COND_INITIALIZER;
static pthread_t buf_tid;
static char buf[32768];
static size_t buf_len;
static int buf_on, buf_stop;
static long buf_ms;
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
	const char *path = cfg_str("log_file");
	int fd;

	snprintf(log_prog, sizeof(log_prog), "%s", program);
	log_pid = getpid();
	if (drops == &own_drops) {
		void *m = mmap(NULL, sizeof(*drops), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (m != MAP_FAILED)
			drops = m;	/* zeroed; lives as long as the process */
	}
	pthread_atfork(NULL, NULL, log_atfork_child);
	if (path == NULL || *path == '\0' || strcmp(path, "-") == 0)
		return 0;
	snprintf(log_path, sizeof(log_path), "%s", path);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot open log %s: %s\n", program, path,
		    strerror(errno));
		return -1;
	}
	log_fd = fd;
	return 0;
}

int log_reopen(void)
{
	int fd;

	if (log_path[0] == '\0')
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_error("cannot reopen log %s: %s; writing to the old file",
		    log_path, strerror(errno));
		return -1;
	}
	/* dup3 swaps the file under log_fd in one step: a writer on another
	 * thread writes its whole line to the old file or to the new one. */
	if (dup3(fd, log_fd, O_CLOEXEC) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	log_info("log reopened");
	return 0;
}

unsigned long log_dropped(void)
{
	return atomic_load(&drops->dropped);
}

static long long mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long long)ts.tv_sec;
}

static void count_dropped(const char *p, size_t n, int err)
{
	unsigned long lines = 0, total;
	long long now = mono_s(), last;
	char note[256];
	size_t i;
	int m;

	for (i = 0; i < n; i++)
		lines += p[i] == '\n';
	total = atomic_fetch_add(&drops->dropped, lines ? lines : 1) +
	    (lines ? lines : 1);
	last = atomic_load(&drops->reported);
	if ((last == 0 || now - last >= LOG_DROP_REPORT_SECS) &&
	    atomic_compare_exchange_strong(&drops->reported, &last,
	    now ? now : 1)) {
		m = snprintf(note, sizeof(note), "%s[%d]: log %s: %s; %lu "
		    "lines dropped so far\n", log_prog, (int)getpid(),
		    log_path[0] ? log_path : "stderr", strerror(err), total);
		if (m > 0 && write(2, note, (size_t)m) < 0)
			return;	/* nowhere left to say it */
	}
}

/* Returns 0 when all was written, else counts what was not. */
static int write_raw(const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(log_fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			count_dropped(p, n, w < 0 ? errno : ENOSPC);
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void write_all(const char *p, size_t n)
{
	unsigned long lost, noted;
	char line[LINE_MAX_LEN];

	if (write_raw(p, n) != 0)
		return;
	/* Written again after losing lines: say so in the log itself. */
	lost = atomic_load(&drops->dropped);
	noted = atomic_load(&drops->noted);
	if (lost != noted &&
	    atomic_compare_exchange_strong(&drops->noted, &noted, lost))
		write_raw(line, format(line, "warn", "log: %lu lines could "
		    "not be written and are lost (%lu since start)",
		    lost - noted, lost));
}

/* Called with buf_mu held. */
static void flush_locked(void)
{
	if (buf_len > 0)
		write_all(buf, buf_len);
	buf_len = 0;
}

static void *flusher(void *arg)
{
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&buf_mu);
	while (!buf_stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (buf_ms % 1000) * 1000000L;
		ts.tv_sec += buf_ms / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&buf_cv, &buf_mu, &ts);
		flush_locked();
	}
	pthread_mutex_unlock(&buf_mu);
	return NULL;
}

int log_buffer_start(long flush_ms)
{
	if (flush_ms <= 0 || buf_on)
		return 0;
	buf_ms = flush_ms;
	buf_stop = 0;
	if (pthread_create(&buf_tid, NULL, flusher, NULL) != 0)
		return -1;
	buf_on = 1;
	return 0;
}

void log_buffer_stop(void)
{
	if (!buf_on)
		return;
	pthread_mutex_lock(&buf_mu);
	buf_stop = 1;
	pthread_cond_signal(&buf_cv);
	pthread_mutex_unlock(&buf_mu);
	pthread_join(buf_tid, NULL);
	buf_on = 0;
	pthread_mutex_lock(&buf_mu);
	flush_locked();
	pthread_mutex_unlock(&buf_mu);
}

const char *log_field(const char *s, char *buf, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	if (s == NULL || *s == '\0')
		return "-";
	if (n < 8)
		return "...";
	for (; *p; p++) {
		int enc = *p <= 0x20 || *p >= 0x7f || *p == '%' || *p == '"' ||
		    *p == '\\';

		if (o + (enc ? 3 : 1) > n - 4) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (enc) {
			buf[o++] = '%';
			buf[o++] = hex[*p >> 4];
			buf[o++] = hex[*p & 15];
		} else {
			buf[o++] = (char)*p;
		}
	}
	buf[o] = '\0';
	return buf;
}

size_t log_escape(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, k;

	if (cap == 0)
		return 0;
	while (*p) {
		k = *p < 0x80 ? 1 : utf8_len(p);
		if (k == 1 && *p >= 0x20 && *p != 0x7f && *p != '\\') {
			if (o + 1 >= cap)
				break;
			out[o++] = (char)*p++;
		} else if (k > 1) {
			if (o + k >= cap)
				break;
			memcpy(out + o, p, k);
			o += k;
			p += k;
		} else if (*p == '\\') {
			if (o + 2 >= cap)
				break;
			out[o++] = '\\';
			out[o++] = '\\';
			p++;
		} else {
			if (o + 4 >= cap)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
			p++;
		}
	}
	out[o] = '\0';
	return o;
}

/* One whole line, newline included, into line[LINE_MAX_LEN]. */
static size_t vformat(char *line, const char *level, const char *fmt,
    va_list ap)
{
	/* The date and time to the second, formatted once a second by each
	 * thread: a busy program writes thousands of lines in it. */
	static _Thread_local time_t stamp_sec = -1;
	static _Thread_local char stamp[80];
	struct timeval tv;
	struct tm tm;
	char msg[LINE_MAX_LEN];
	int n;

	gettimeofday(&tv, NULL);
	if (tv.tv_sec != stamp_sec) {
		gmtime_r(&tv.tv_sec, &tm);
		snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		stamp_sec = tv.tv_sec;
	}
	n = snprintf(line, LINE_MAX_LEN, "%s.%03dZ %s[%d] %s ", stamp,
	    (int)(tv.tv_usec / 1000), log_prog,
	    (int)(log_pid != 0 ? log_pid : getpid()), level);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	/* Whatever a field held, the message stays one line of text: a
	 * newline in a URL or a provider's error cannot start a forged line. */
	n += (int)log_escape(msg, line + n, LINE_MAX_LEN - (size_t)n - 1);
	line[n++] = '\n';
	return (size_t)n;
}

static size_t format(char *line, const char *level, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = vformat(line, level, fmt, ap);
	va_end(ap);
	return n;
}

void log_msg(const char *level, const char *fmt, ...)
{
	char line[LINE_MAX_LEN];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = vformat(line, level, fmt, ap);
	va_end(ap);
	if (!buf_on) {
		write_all(line, n);
		return;
	}
	pthread_mutex_lock(&buf_mu);
	if (strcmp(level, "info") != 0) {
		/* in order after what is buffered, and at once */
		flush_locked();
		write_all(line, n);
	} else {
		if (buf_len + n > sizeof(buf))
			flush_locked();
		memcpy(buf + buf_len, line, n);
		buf_len += n;
	}
	pthread_mutex_unlock(&buf_mu);
}
