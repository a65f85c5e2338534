/* unit: a minimal test harness. Each CHECK counts; the binary prints
 * "N passed, N failed" and exits non-zero on any failure. */
#ifndef LICD_UNIT_H
#define LICD_UNIT_H

#include <stdio.h>

static int unit_pass, unit_fail;

#define CHECK(cond) do { \
	if (cond) { unit_pass++; } else { unit_fail++; \
		fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define UNIT_DONE(name) do { \
	printf("%s: %d passed, %d failed\n", name, unit_pass, unit_fail); \
	return unit_fail == 0 ? 0 : 1; \
} while (0)

#endif
