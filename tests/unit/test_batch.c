/* batch.c: every submitted item is run exactly once, by one leader at a
 * time, items arriving during a run are grouped, each continuation is
 * called exactly once, after its item's run, none is left unanswered when
 * submissions stop, a continuation may submit its item again, and a batch
 * with hand hands its answers on when more items wait. */
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
static atomic_int answered_before_run;
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
	if (ran[a->j.thread][a->j.seq] != 1)
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

/* A queue whose first run blocks until told to go on. */
static sem_t in_run, go_on;
static atomic_int slow_runs, slow_answered;
static atomic_int slow_block;	/* the next run waits for go_on */

static void run_slow(struct db *db, struct batch_item **items, size_t n)
{
	(void)db;
	(void)items;
	(void)n;
	atomic_fetch_add(&slow_runs, 1);
	if (atomic_exchange(&slow_block, 0)) {
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
	atomic_store(&slow_block, 1);
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

/* batch_join: refused while no batch runs (nothing queued, nothing run);
 * while one runs, c is queued without a submitter of its own, and the
 * running batch's leader runs and answers it before it returns. */
static void test_join(void)
{
	struct batch_item a = { .then = slow_then }, c = { .then = slow_then };
	pthread_t th;
	int before = atomic_load(&slow_runs), answered =
	    atomic_load(&slow_answered);

	CHECK(batch_join(&slow, &c) == 0);
	CHECK(slow.head == NULL && atomic_load(&slow_runs) == before);
	sem_init(&in_run, 0, 0);
	sem_init(&go_on, 0, 0);
	atomic_store(&slow_block, 1);
	CHECK(pthread_create(&th, NULL, slow_leader, &a) == 0);
	while (sem_wait(&in_run) != 0)
		;
	CHECK(batch_join(&slow, &c) == 1);
	CHECK(atomic_load(&slow_answered) == answered);
	sem_post(&go_on);
	pthread_join(th, NULL);
	CHECK(atomic_load(&slow_answered) == answered + 2);
	CHECK(atomic_load(&slow_runs) == before + 2);
	CHECK(slow.head == NULL && !slow.leading);
}

/* A continuation that submits its item again (usage.c, for a key
 * confirmed after its first run): the item runs twice, the continuation
 * is called twice, the second time from within the first. */
static atomic_int again_runs, again_answered;

static void run_again(struct db *db, struct batch_item **items, size_t n)
{
	(void)db;
	(void)items;
	atomic_fetch_add(&again_runs, (int)n);
}

static struct batch again = BATCH_INIT(run_again, 8);

static void again_then(struct batch_item *it, struct db *db)
{
	if (atomic_fetch_add(&again_answered, 1) == 0)
		batch_submit(&again, db, it);
}

static void test_submit_again(void)
{
	struct batch_item it = { .then = again_then };

	batch_submit(&again, NULL, &it);
	CHECK(atomic_load(&again_runs) == 2);
	CHECK(atomic_load(&again_answered) == 2);
	CHECK(again.head == NULL && !again.leading);
}

/* A batch with hand: items queued while a batch runs make its leader
 * hand that batch on (chained behind its first item) and run them at
 * once; batch_answer answers each handed item once, the first last; with
 * nothing queued the leader answers itself. */
static sem_t h_in_run, h_go_on;
static atomic_int h_block, h_runs;
static struct batch_item *h_firsts[4];
static int h_hands, h_count[4], h_order[8], h_n;

struct h_item {
	struct batch_item it;
	int id;
};

static void run_h(struct db *db, struct batch_item **items, size_t n)
{
	(void)db;
	(void)items;
	(void)n;
	atomic_fetch_add(&h_runs, 1);
	if (atomic_exchange(&h_block, 0)) {
		sem_post(&h_in_run);
		while (sem_wait(&h_go_on) != 0)
			;
	}
}

static int hand_h(struct batch_item **items, size_t n)
{
	(void)n;
	if (h_hands >= 4)
		return 0;
	h_firsts[h_hands++] = items[0];
	return 1;
}

static struct batch hb = BATCH_INIT_HAND(run_h, 8, hand_h);

static void h_then(struct batch_item *it, struct db *db)
{
	struct h_item *h = (struct h_item *)it;

	(void)db;
	h_count[h->id]++;
	h_order[h_n++] = h->id;
}

static void *h_leader(void *arg)
{
	batch_submit(&hb, NULL, arg);
	return NULL;
}

static void test_hand(void)
{
	struct h_item a = { { .then = h_then }, 0 },
	    b = { { .then = h_then }, 1 }, c = { { .then = h_then }, 2 },
	    d = { { .then = h_then }, 3 };
	pthread_t th;

	sem_init(&h_in_run, 0, 0);
	sem_init(&h_go_on, 0, 0);
	atomic_store(&h_block, 1);
	CHECK(pthread_create(&th, NULL, h_leader, &a.it) == 0);
	while (sem_wait(&h_in_run) != 0)
		;
	batch_submit(&hb, NULL, &b.it);	/* queued behind [a] */
	batch_submit(&hb, NULL, &c.it);
	atomic_store(&h_block, 1);		/* [b, c] waits too */
	sem_post(&h_go_on);
	while (sem_wait(&h_in_run) != 0)
		;
	batch_submit(&hb, NULL, &d.it);	/* queued behind [b, c] */
	sem_post(&h_go_on);
	pthread_join(th, NULL);
	/* [a] and [b, c] handed as each next batch was waiting, [d] answered
	 * by its leader: nothing was queued behind it. */
	CHECK(atomic_load(&h_runs) == 3);
	CHECK(h_hands == 2);
	CHECK(h_firsts[0] == &a.it && h_firsts[1] == &b.it);
	CHECK(h_count[0] == 0 && h_count[1] == 0 && h_count[2] == 0);
	CHECK(h_count[3] == 1);
	batch_answer(h_firsts[0], NULL);
	batch_answer(h_firsts[1], NULL);
	CHECK(h_count[0] == 1 && h_count[1] == 1 && h_count[2] == 1 &&
	    h_count[3] == 1);
	CHECK(h_n == 4 && h_order[1] == 0 && h_order[2] == 2 &&
	    h_order[3] == 1);
	CHECK(hb.head == NULL && !hb.leading);
}

int main(void)
{
	pthread_t th[THREADS];
	int t, s, once = 1;

	for (t = 0; t < THREADS; t++)
		CHECK(pthread_create(&th[t], NULL, async_client,
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
	for (t = 0; t < THREADS; t++)
		for (s = 0; s < PER_THREAD; s++)
			once &= atomic_load(&answered[t][s]) == 1;
	CHECK(once);
	CHECK(atomic_load(&answered_before_run) == 0);
	CHECK(atomic_load(&overlap) == 0);
	CHECK(atomic_load(&too_big) == 0);
	/* 16 threads against a 20 us run: items must have been grouped. */
	CHECK(atomic_load(&grouped) > 0);
	CHECK(atomic_load(&runs) < THREADS * PER_THREAD);
	test_nothing_left_behind();
	test_submit_again();
	test_join();
	test_hand();
	UNIT_DONE("batch");
}
