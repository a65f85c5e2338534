/* Query strings (GET /api/usage). */
#include "url.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *q = malloc(size + 1), *v = NULL;

	if (q == NULL)
		return 0;
	memcpy(q, data, size);
	q[size] = '\0';
	if (url_query(q, "license_key", &v) == 0)
		free(v);
	if (url_query(q, "period", &v) == 0)
		free(v);
	free(q);
	return 0;
}
