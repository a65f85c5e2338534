/* decide: see decide.h. */
#include "decide.h"

#include <stddef.h>
#include <string.h>

static const char *const codes[] = { "VALID", "INVALID_KEY", "REVOKED",
    "SUSPENDED", "EXPIRED", "DOMAIN_NOT_ALLOWED", "FEATURE_NOT_LICENSED",
    "TOO_MANY_INSTALLATIONS", "INSTALLATION_NOT_ACTIVE",
    "BORROW_LIMIT_EXCEEDED", "NOT_FLOATING" };

_Static_assert(sizeof(codes) / sizeof(codes[0]) == DECIDE_NCODES,
    "DECIDE_NCODES is the number of codes");

int decide_code_index(const char *code)
{
	int i;

	for (i = 0; code != NULL && i < DECIDE_NCODES; i++)
		if (strcmp(code, codes[i]) == 0)
			return i;
	return -1;
}

const char *decide_code(const char *code)
{
	int i = decide_code_index(code);

	return i >= 0 ? codes[i] : NULL;
}

const char *decide_code_at(size_t i)
{
	return i < DECIDE_NCODES ? codes[i] : NULL;
}

static int is_valid(const char *code)
{
	return strcmp(code, "VALID") == 0;
}

/* The request names a domain the installation's row does not hold yet. */
static int new_domain(const struct decide_req *rq,
    const struct lic_lookup *lk)
{
	return rq->domain != NULL && (lk->domain == NULL ||
	    strcmp(lk->domain, rq->domain) != 0);
}

/* A floating seat is live while its lease is; it is renewed once less
 * than LIC_SEAT_RENEW_LEFT of its ttl is left. */
static int seat_live(const struct lic_lookup *lk)
{
	return lk->active && lk->seat_expires > (long long)lk->now;
}

static int seat_due(const struct lic_lookup *lk)
{
	return lk->seat_expires - (long long)lk->now <
	    LIC_SEAT_RENEW_LEFT(lk->seat_ttl);
}

static void validate(const struct decide_req *rq,
    const struct lic_lookup *lk, struct decision *d)
{
	if (is_valid(d->code) && !lic_domain_allowed(&lk->l, rq->domain))
		d->code = "DOMAIN_NOT_ALLOWED";
	if (is_valid(d->code) && rq->feature != NULL &&
	    !lic_has_feature(&lk->l, rq->feature))
		d->code = "FEATURE_NOT_LICENSED";
	if (lk->seat_ttl > 0) {
		d->active = seat_live(lk);
		if (is_valid(d->code) && (!d->active || seat_due(lk) ||
		    new_domain(rq, lk)))
			d->write = DECIDE_SEAT_TAKE;
	} else if (is_valid(d->code) && (!lk->active || new_domain(rq, lk))) {
		/* A domain is recorded only once it is allowed, and at once:
		 * the next call's decision depends on it. */
		d->write = lk->active ? DECIDE_DOMAIN : DECIDE_ACTIVATE;
	}
	/* Refused calls are contacts too. */
	d->touch = d->write == DECIDE_NO_WRITE && lk->needs_touch;
}

static void heartbeat(const struct lic_lookup *lk, struct decision *d)
{
	if (is_valid(d->code) && lk->seat_ttl > 0) {
		d->active = seat_live(lk);
		if (!d->active)
			d->code = "INSTALLATION_NOT_ACTIVE";
		else if (seat_due(lk))
			d->write = DECIDE_SEAT_RENEW;
	}
	/* A heartbeat never activates a seat. */
	if (is_valid(d->code) && !d->active)
		d->code = "INSTALLATION_NOT_ACTIVE";
	d->touch = lk->needs_touch;
}

void decide(const struct decide_req *rq, const struct lic_lookup *lk,
    struct decision *d)
{
	const char *eff;

	d->write = DECIDE_NO_WRITE;
	d->touch = 0;
	d->active = 0;
	d->lease = 0;
	if (lk == NULL) {
		d->code = "INVALID_KEY";
		return;
	}
	d->code = decide_code(lic_state(&lk->l, lk->now, &eff));
	d->active = lk->active;
	if (rq->call == DECIDE_VALIDATE)
		validate(rq, lk, d);
	else
		heartbeat(lk, d);
	d->lease = is_valid(d->code);
}

int decide_from_memory(const struct lic_lookup *lk,
    const struct decision *d)
{
	if (d->write != DECIDE_NO_WRITE)
		return 0;
	return lk->seat_ttl <= 0 || (seat_live(lk) &&
	    lk->seat_expires - (long long)lk->now >
	    LIC_SEAT_RENEW_LEFT(lk->seat_ttl) + DECIDE_SEAT_SKEW);
}

void decide_written(struct decision *d, const char *code)
{
	const char *c = decide_code(code);

	switch (d->write) {
	case DECIDE_NO_WRITE:
		return;
	case DECIDE_DOMAIN:
		/* licd_touch answers the row it refreshed: still VALID. */
		d->code = "VALID";
		break;
	case DECIDE_ACTIVATE:
	case DECIDE_SEAT_TAKE:
		d->code = c != NULL ? c : "INVALID_KEY";
		d->active = is_valid(d->code);
		break;
	case DECIDE_SEAT_RENEW:
		/* Lapsed, or the license changed, since the lookup; a heartbeat
		 * never takes a seat again. */
		if (c == NULL || (!is_valid(c) && strcmp(c, "REVOKED") != 0 &&
		    strcmp(c, "SUSPENDED") != 0 && strcmp(c, "EXPIRED") != 0))
			c = "INSTALLATION_NOT_ACTIVE";
		d->code = c;
		d->active = is_valid(c);
		break;
	}
	d->lease = is_valid(d->code);
}
