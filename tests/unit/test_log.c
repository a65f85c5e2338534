/* log: whole lines in order; buffered info lines wait for the flusher, a
 * warn line or the stop, and a line past the buffer's room flushes it;
 * unbuffered lines are written at once. */
#include "log.h"
#include "unit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[] = "/tmp/licd-unit-log.XXXXXX";

static char *text(void)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static int lines(void)
{
	const char *p = text();
	int n = 0;

	for (; *p; p++)
		n += *p == '\n';
	return n;
}

static void *writer(void *arg)
{
	int i;

	for (i = 0; i < 500; i++)
		log_info("t=%ld i=%d %s", (long)(size_t)arg, i,
		    "padding padding padding padding padding padding");
	return NULL;
}

int main(void)
{
	pthread_t t[4];
	char *s, *a, *b;
	long i;
	int fd = mkstemp(path), whole = 1;

	close(fd);
	setenv("LICD_LOG_FILE", path, 1);
	CHECK(log_init("unit") == 0);

	log_info("first rid=u1");		/* unbuffered: at once */
	CHECK(strstr(text(), "unit[") != NULL);
	CHECK(strstr(text(), " info first rid=u1\n") != NULL);

	CHECK(log_buffer_start(60000) == 0);
	log_info("second rid=u2");
	log_info("third rid=u3");
	CHECK(strstr(text(), "second") == NULL);	/* waits */
	log_warn("fourth");			/* flushes first, in order */
	s = text();
	a = strstr(s, "second");
	b = strstr(s, "third");
	CHECK(a != NULL && b != NULL && a < b);
	CHECK(b != NULL && strstr(b, " warn fourth\n") != NULL);

	log_info("fifth");
	CHECK(strstr(text(), "fifth") == NULL);
	/* 2,000 lines of ~130 bytes overflow the 32 KiB buffer many times:
	 * what is in the file is whole lines only. */
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, writer, (void *)(size_t)i);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK(lines() > 5 && lines() < 2005);
	log_buffer_stop();
	CHECK(lines() == 2005);
	for (s = text(); *s; s = strchr(s, '\n') + 1)
		if (strncmp(s, "20", 2) != 0)
			whole = 0;
	CHECK(whole);

	log_info("sixth");			/* stopped: at once again */
	CHECK(strstr(text(), "sixth") != NULL);

	/* The flusher writes within flush_ms without any other help. */
	CHECK(log_buffer_start(50) == 0);
	log_info("seventh");
	for (i = 0; i < 100 && strstr(text(), "seventh") == NULL; i++)
		usleep(10000);
	CHECK(strstr(text(), "seventh") != NULL);
	log_buffer_stop();

	/* A field cannot end its line or forge another. */
	log_info("rid=x GET %s status=404", "/a\n2026-11-29T00:00:00.000Z "
	    "revoke[1] info rid=y POST /api/revoke status=200\r\x1b[2J\x7f\\");
	s = strstr(text(), "rid=x GET");
	CHECK(s != NULL && strchr(s, '\n') != NULL &&
	    strchr(s, '\n')[1] == '\0');
	CHECK(s != NULL && strstr(s, "/a\\x0a2026") != NULL);
	CHECK(s != NULL && strstr(s, "\\x0d\\x1b[2J\\x7f\\\\ status=404") != NULL);
	unlink(path);

	{
		char out[64], f[32];

		log_escape("caf\xc3\xa9 \xff\xc0\x80 \xed\xa0\x80", out,
		    sizeof(out));
		CHECK(strcmp(out, "caf\xc3\xa9 \\xff\\xc0\\x80 "
		    "\\xed\\xa0\\x80") == 0);
		CHECK(log_escape("abcdef", out, 4) == 3 &&
		    strcmp(out, "abc") == 0);
		/* a field is one word: space, %, quotes and bytes >= 0x7f
		 * percent-encoded */
		CHECK(strcmp(log_field("/x y%\"\\\n\xc3\xa9", f, sizeof(f)),
		    "/x%20y%25%22%5C%0A%C3%A9") == 0);
		CHECK(strcmp(log_field(NULL, f, sizeof(f)), "-") == 0);
		CHECK(strcmp(log_field("", f, sizeof(f)), "-") == 0);
		CHECK(strcmp(log_field("/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", f,
		    sizeof(f)), "/aaaaaaaaaaaaaaaaaaaaaaaaaaa...") == 0);
	}
	UNIT_DONE("log");
}
