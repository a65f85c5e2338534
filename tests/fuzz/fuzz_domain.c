/* Domain matching: input "pattern NUL host". */
#include "lic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 2);
	size_t pl;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	buf[size + 1] = '\0';
	pl = strlen(buf);
	lic_domain_match(buf, buf + (pl < size ? pl + 1 : pl));
	free(buf);
	return 0;
}
