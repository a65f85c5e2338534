/* Redirect URL origins: input "url NUL allowed-list". */
#include "origin.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 2), o[ORIGIN_MAX];
	size_t ul;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	buf[size + 1] = '\0';
	ul = strlen(buf);
	if (origin_of(buf, o) == 0 && strlen(o) >= ORIGIN_MAX)
		abort();
	origin_allowed(buf, buf + (ul < size ? ul + 1 : ul));
	free(buf);
	return 0;
}
