/* batch.c: every submitted item is run exactly once, by one leader at a
 * time, items arriving during a run are grouped, and nobody returns
 * before its item ran. Items with a continuation (half the threads here,
 * in the same queue as waiting ones) have it called exactly once, after
 * their run, and none is left unanswered when submissions stop. */
#include "batch.h"
#include "unit.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
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
static atomic_int not_run_on_return, answered_before_run;
static atomic_int answered[THREADS][PER_THREAD];

/* Async items live here until answered: the continuation frees the slot
 * (as http.c reuses a request's context). */
struct async_item {
	struct batch_item it;
	struct job j;
};

static void then(struct batch_item *it, struct db *db)
{
	struct async_item *a = (struct async_item *)it;

	(void)db;
	if (ran[a->j.thread][a->j.seq] != 1 || !it->done)
		atomic_fetch_add(&answered_before_run, 1);
	atomic_fetch_add(&answered[a->j.thread][a->j.seq], 1);
	memset(a, 0xa5, sizeof(*a));	/* gone, as far as batch.c knows */
	free(a);
}

static void *async_client(void *arg)
{
	int t = (int)(long)arg, s;

	for (s = 0; s < PER_THREAD; s++) {
		struct async_item *a = calloc(1, sizeof(*a));

		if (a == NULL)
			abort();
		a->j.thread = t;
		a->j.seq = s;
		a->it.arg = &a->j;
		a->it.then = then;
		batch_submit(&q, NULL, &a->it);
		if (s % 16 == 0)
			sched_yield();
	}
	return NULL;
}

static void *client(void *arg)
{
	int t = (int)(long)arg, s;

	for (s = 0; s < PER_THREAD; s++) {
		struct job j = { t, s };
		struct batch_item it = { .arg = &j };

		batch_submit(&q, NULL, &it);
		/* The leader wrote ran[][] before marking the item done and
		 * posting its semaphore, which batch_submit waited on. */
		if (ran[t][s] != 1 || !it.done)
			atomic_fetch_add(&not_run_on_return, 1);
	}
	return NULL;
}

/* A queue whose first run blocks until told to go on. */
static sem_t in_run, go_on;
static atomic_int slow_runs, slow_answered;

static void run_slow(struct db *db, struct batch_item **items, size_t n)
{
	(void)db;
	(void)items;
	(void)n;
	if (atomic_fetch_add(&slow_runs, 1) == 0) {
		sem_post(&in_run);
		while (sem_wait(&go_on) != 0)
			;
	}
}

static struct batch slow = BATCH_INIT(run_slow, 8);

static void slow_then(struct batch_item *it, struct db *db)
{
	(void)it;
	(void)db;
	atomic_fetch_add(&slow_answered, 1);
}

static void *slow_leader(void *arg)
{
	batch_submit(&slow, NULL, arg);
	return NULL;
}

/* b is queued while a's leader runs, and nobody submits after it: a's
 * leader must run it too before it returns. */
static void test_nothing_left_behind(void)
{
	struct batch_item a = { .then = slow_then }, b = { .then = slow_then };
	pthread_t th;

	sem_init(&in_run, 0, 0);
	sem_init(&go_on, 0, 0);
	CHECK(pthread_create(&th, NULL, slow_leader, &a) == 0);
	while (sem_wait(&in_run) != 0)
		;
	batch_submit(&slow, NULL, &b);	/* queued: returns at once */
	CHECK(atomic_load(&slow_answered) == 0);
	sem_post(&go_on);
	pthread_join(th, NULL);
	CHECK(atomic_load(&slow_answered) == 2);
	CHECK(atomic_load(&slow_runs) == 2);
	CHECK(slow.head == NULL && !slow.leading);
}

/* The same, with the first continuation held until told to go on. */
static sem_t in_then, hold;
static atomic_int two_runs, two_answered;
static struct batch_item held;

static void run_two(struct db *db, struct batch_item **items, size_t n)
{
	run_slow(db, items, n);
	atomic_fetch_add(&two_runs, 1);
}

static struct batch two = BATCH_INIT(run_two, 8);

static void two_then(struct batch_item *it, struct db *db)
{
	(void)db;
	if (it == &held) {
		sem_post(&in_then);
		while (sem_wait(&hold) != 0)
			;
	}
	atomic_fetch_add(&two_answered, 1);
}

static void *two_submit(void *arg)
{
	batch_submit(&two, NULL, arg);
	return NULL;
}

static int is_tail(struct batch *b, struct batch_item *it)
{
	int r;

	pthread_mutex_lock(&b->mu);
	r = b->tail == it;
	pthread_mutex_unlock(&b->mu);
	return r;
}

/* A waiting submitter that finds a queue nobody leads (its last leader is
 * answering) longer than a batch, a waiting item before its own, must
 * lead until its own item has run, not hand the lead on before. */
static void test_leader_runs_its_own(void)
{
	struct batch_item q8[8], s = { 0 }, t = { 0 };
	pthread_t ta, ts;
	int i;

	held.then = two_then;
	atomic_store(&slow_runs, 0);
	sem_init(&in_run, 0, 0);
	sem_init(&go_on, 0, 0);
	sem_init(&in_then, 0, 0);
	sem_init(&hold, 0, 0);
	CHECK(pthread_create(&ta, NULL, two_submit, &held) == 0);
	while (sem_wait(&in_run) != 0)
		;
	for (i = 0; i < 8; i++) {
		memset(&q8[i], 0, sizeof(q8[i]));
		q8[i].then = two_then;
		batch_submit(&two, NULL, &q8[i]);
	}
	CHECK(pthread_create(&ts, NULL, two_submit, &s) == 0);
	while (!is_tail(&two, &s))
		sched_yield();
	sem_post(&go_on);		/* held's batch ends; held is answered */
	while (sem_wait(&in_then) != 0)
		;
	batch_submit(&two, NULL, &t);	/* leads: 8, then s and t */
	CHECK(t.done);
	sem_post(&hold);
	pthread_join(ta, NULL);
	pthread_join(ts, NULL);
	CHECK(s.done);
	CHECK(atomic_load(&two_answered) == 9);
	CHECK(atomic_load(&two_runs) == 3);
}

int main(void)
{
	pthread_t th[THREADS];
	int t, s, once = 1;

	for (t = 0; t < THREADS; t++)
		CHECK(pthread_create(&th[t], NULL, t % 2 ? async_client : client,
		    (void *)(long)t) == 0);
	for (t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	for (t = 0; t < THREADS; t++)
		for (s = 0; s < PER_THREAD; s++)
			once &= ran[t][s] == 1;
	CHECK(once);
	/* Every continuation ran once, and after its item's run: nothing
	 * was stranded in the queue once the submitters stopped. */
	once = 1;
	for (t = 1; t < THREADS; t += 2)
		for (s = 0; s < PER_THREAD; s++)
			once &= atomic_load(&answered[t][s]) == 1;
	CHECK(once);
	CHECK(atomic_load(&answered_before_run) == 0);
	CHECK(atomic_load(&not_run_on_return) == 0);
	CHECK(atomic_load(&overlap) == 0);
	CHECK(atomic_load(&too_big) == 0);
	/* 16 threads against a 20 us run: items must have been grouped. */
	CHECK(atomic_load(&grouped) > 0);
	CHECK(atomic_load(&runs) < THREADS * PER_THREAD);
	test_nothing_left_behind();
	test_leader_runs_its_own();
	UNIT_DONE("batch");
}
