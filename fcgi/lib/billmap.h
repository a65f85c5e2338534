/*
 * billmap: provider webhook events -> provider-neutral billing actions
 * (the "op" objects licd_billing_apply() in sql/ applies), as data: one
 * table per provider, each event type with the field paths it is read
 * from and the API versions each path covers. When a provider moves a
 * field, the fix is a table row (billmap.c).
 *
 * Paths are dotted; a segment "name[]" visits every element of the array
 * at name, a numeric segment indexes an array. A field is taken from the
 * first of its paths that yields a value.
 */
#ifndef LICD_BILLMAP_H
#define LICD_BILLMAP_H

#include <stddef.h>
#include <json-c/json.h>

enum bm_result {
	BM_ACTION = 0,		/* *action is the action to apply */
	BM_IGNORE = 1,		/* a type licd does not act on, or an event
				 * that says it is not about a purchase (an
				 * invoice with no subscription) */
	BM_UNMAPPED = -1,	/* a type licd acts on, in a shape it cannot
				 * read: a required field is at none of the
				 * known paths */
};

/* Maps event ev of type `type` from provider ("stripe" | "paddle").
 * BM_ACTION: *action is a new object (caller puts it). BM_UNMAPPED:
 * why names the field that is missing. */
int bm_map(const char *provider, struct json_object *ev, const char *type,
    struct json_object **action, char *why, size_t whylen);

/* The string values at path in o (every element for "[]" segments), in
 * document order, as a new array; *saw_null set when a step met JSON null. */
struct json_object *bm_values(struct json_object *o, const char *path,
    int *saw_null);

#endif
