/* Stripe-Signature and Paddle-Signature headers: the first bytes a
 * webhook sender controls. Input: header NUL body. */
#include "sig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	struct sig_header h;
	size_t hl;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	hl = strlen(buf);
	sig_parse(SIG_STRIPE, buf, &h);
	sig_parse(SIG_PADDLE, buf, &h);
	sig_verify(SIG_STRIPE, buf, "whsec_a,whsec_b", buf + hl,
	    hl < size ? size - hl - 1 : 0, 1700000000, 300);
	sig_verify(SIG_PADDLE, buf, "pdl", buf + hl,
	    hl < size ? size - hl - 1 : 0, 1700000000, 300);
	free(buf);
	return 0;
}
