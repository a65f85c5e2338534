/* The license rules of a usage call in C (lic_state, lic_has_feature,
 * lic_limit), case by case from tests/usage_rules.txt, which the SQL rules
 * of licd_usage_add_batch are held to as well (test_usage.py). */
#include "lic.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#define NOW 1800000000LL

static long long rel(const char *s)
{
	return strcmp(s, "-") == 0 ? 0 : NOW + strtoll(s, NULL, 10);
}

/* The code C gives the case: the license's state, the feature, then the
 * limit as GET /api/usage shows it (limit, remaining = limit - used). */
static const char *c_code(const char status[16], const char *expires,
    const char *grace, const char *features, const char *limit,
    long long used, long long qty)
{
	static char buf[64];
	struct lic l;
	const char *eff, *code;
	char js[256];
	long long lim;

	memset(&l, 0, sizeof(l));
	snprintf(l.status, sizeof(l.status), "%s", status);
	l.expires_at = rel(expires);
	l.grace_until = rel(grace);
	l.features = json_object_new_array();
	if (strcmp(features, "-") != 0) {
		char f[128], *p, *save = NULL;

		snprintf(f, sizeof(f), "%s", features);
		for (p = strtok_r(f, ",", &save); p != NULL;
		    p = strtok_r(NULL, ",", &save))
			json_object_array_add(l.features,
			    json_object_new_string(p));
	}
	if (strcmp(limit, "-") == 0)
		snprintf(js, sizeof(js), "{}");
	else
		snprintf(js, sizeof(js), "{\"api_calls_per_month\":%s}", limit);
	l.limits = json_tokener_parse(js);
	code = lic_state(&l, (time_t)NOW, &eff);
	if (strcmp(code, "VALID") == 0 && !lic_has_feature(&l, "api_calls"))
		code = "FEATURE_NOT_LICENSED";
	if (strcmp(code, "VALID") == 0) {
		lim = lic_limit(&l, "api_calls_per_month");
		if (lim >= 0 && qty > (lim > used ? lim - used : 0))
			code = "USAGE_LIMIT_EXCEEDED";
	}
	snprintf(buf, sizeof(buf), "%s", code);
	json_object_put(l.features);
	json_object_put(l.limits);
	return buf;
}

int main(void)
{
	FILE *f = fopen("tests/usage_rules.txt", "r");
	char line[512], st[16], ex[32], gr[32], fe[128], li[64], code[64];
	long long used, qty;
	int cases = 0;

	CHECK(f != NULL);
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		const char *got;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%15s %31s %31s %127s %63s %lld %lld %63s", st,
		    ex, gr, fe, li, &used, &qty, code) != 8) {
			CHECK(!"a line of usage_rules.txt has 8 fields");
			continue;
		}
		cases++;
		got = c_code(st, ex, gr, fe, li, used, qty);
		if (strcmp(got, code) != 0)
			fprintf(stderr, "usage_rules.txt: %s", line);
		CHECK(strcmp(got, code) == 0);
	}
	CHECK(cases >= 20);
	if (f != NULL)
		fclose(f);
	UNIT_DONE("usage rules");
}
