/* batch.c: every submitted item is run exactly once, by one leader at a
 * time, items arriving during a run are grouped, and nobody returns
 * before its item ran. */
#include "batch.h"
#include "unit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define THREADS 16
#define PER_THREAD 400

static atomic_int running, overlap, runs, grouped, too_big;
static int ran[THREADS][PER_THREAD];	/* written under the leader role */

struct job {
	int thread, seq;
};

static void run(struct db *db, struct batch_item **items, size_t n)
{
	struct timespec ts = { 0, 20000 };	/* 20 us "WAL flush" */
	size_t i;

	(void)db;
	if (atomic_fetch_add(&running, 1) != 0)
		atomic_fetch_add(&overlap, 1);
	atomic_fetch_add(&runs, 1);
	if (n > 1)
		atomic_fetch_add(&grouped, 1);
	if (n > 8)
		atomic_fetch_add(&too_big, 1);
	for (i = 0; i < n; i++) {
		struct job *j = items[i]->arg;

		ran[j->thread][j->seq]++;
	}
	nanosleep(&ts, NULL);
	atomic_fetch_sub(&running, 1);
}

static struct batch q = BATCH_INIT(run, 8);
static atomic_int not_run_on_return;

static void *client(void *arg)
{
	int t = (int)(long)arg, s;

	for (s = 0; s < PER_THREAD; s++) {
		struct job j = { t, s };
		struct batch_item it;

		it.arg = &j;
		batch_submit(&q, NULL, &it);
		/* The leader wrote ran[][] before marking the item done and
		 * posting its semaphore, which batch_submit waited on. */
		if (ran[t][s] != 1 || !it.done)
			atomic_fetch_add(&not_run_on_return, 1);
	}
	return NULL;
}

int main(void)
{
	pthread_t th[THREADS];
	int t, s, once = 1;

	for (t = 0; t < THREADS; t++)
		CHECK(pthread_create(&th[t], NULL, client, (void *)(long)t) == 0);
	for (t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	for (t = 0; t < THREADS; t++)
		for (s = 0; s < PER_THREAD; s++)
			once &= ran[t][s] == 1;
	CHECK(once);
	CHECK(atomic_load(&not_run_on_return) == 0);
	CHECK(atomic_load(&overlap) == 0);
	CHECK(atomic_load(&too_big) == 0);
	/* 16 threads against a 20 us run: items must have been grouped. */
	CHECK(atomic_load(&grouped) > 0);
	CHECK(atomic_load(&runs) < THREADS * PER_THREAD);
	UNIT_DONE("batch");
}
