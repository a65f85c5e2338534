/* Query strings (GET /api/usage). */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_req req;
	char *q = malloc(size + 1), *v = NULL;

	if (q == NULL)
		return 0;
	memcpy(q, data, size);
	q[size] = '\0';
	memset(&req, 0, sizeof(req));
	req.query = q;
	if (http_query(&req, "license_key", &v) == 0)
		free(v);
	if (http_query(&req, "period", &v) == 0)
		free(v);
	free(q);
	return 0;
}
