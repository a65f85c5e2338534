/* Domain matching exactly as the contract says, and the license rules. */
#include "lic.h"
#include "unit.h"

#include <string.h>

static void test_match(void)
{
	CHECK(lic_domain_match("company.com", "company.com"));
	CHECK(lic_domain_match("company.com", "COMPANY.COM"));
	CHECK(lic_domain_match("Company.Com", "company.com"));
	CHECK(lic_domain_match("company.com", "company.com."));
	CHECK(lic_domain_match("company.com.", "company.com"));
	CHECK(!lic_domain_match("company.com", "company.com.."));
	CHECK(!lic_domain_match("company.com", "www.company.com"));
	CHECK(!lic_domain_match("company.com", "evilcompany.com"));
	CHECK(!lic_domain_match("company.com", "company.com.evil.com"));
	CHECK(!lic_domain_match("company.com", ""));
	CHECK(!lic_domain_match("company.com", NULL));

	CHECK(lic_domain_match("*.company.com", "app.company.com"));
	CHECK(lic_domain_match("*.company.com", "a.b.c.company.com"));
	CHECK(lic_domain_match("*.company.com", "APP.Company.COM."));
	CHECK(!lic_domain_match("*.company.com", "company.com"));
	CHECK(!lic_domain_match("*.company.com", "company.com."));
	CHECK(!lic_domain_match("*.company.com", "evilcompany.com"));
	CHECK(!lic_domain_match("*.company.com", "app.evilcompany.com"));
	CHECK(!lic_domain_match("*.company.com", "company.com.evil.com"));
	CHECK(!lic_domain_match("*.company.com", "app.company.com.evil.com"));
	CHECK(!lic_domain_match("*.company.com", ".company.com"));
	CHECK(!lic_domain_match("*.company.com", "a..company.com"));
	CHECK(!lic_domain_match("*company.com", "evilcompany.com"));
	CHECK(!lic_domain_match("*", "anything.com"));
	CHECK(!lic_domain_match("a.*.com", "a.b.com"));
	CHECK(!lic_domain_match("company.com", "company.com\n"));
	CHECK(!lic_domain_match("company.com", "company.com/x"));
	CHECK(!lic_domain_match("company.com", "company.com:443"));
}

static void test_allowed(void)
{
	struct lic l;

	memset(&l, 0, sizeof(l));
	l.domains = json_tokener_parse("[]");
	CHECK(lic_domain_allowed(&l, NULL));
	CHECK(lic_domain_allowed(&l, "anything.example"));
	json_object_put(l.domains);
	l.domains = json_tokener_parse("[\"company.com\",\"*.company.com\"]");
	CHECK(!lic_domain_allowed(&l, NULL));
	CHECK(lic_domain_allowed(&l, "company.com"));
	CHECK(lic_domain_allowed(&l, "x.company.com"));
	CHECK(!lic_domain_allowed(&l, "evilcompany.com"));
	json_object_put(l.domains);
}

static void test_state(void)
{
	struct lic l;
	const char *eff;

	memset(&l, 0, sizeof(l));
	strcpy(l.status, "active");
	CHECK(strcmp(lic_state(&l, 1000, &eff), "VALID") == 0);
	CHECK(strcmp(eff, "active") == 0);
	l.expires_at = 2000;
	CHECK(strcmp(lic_state(&l, 1999, &eff), "VALID") == 0);
	CHECK(strcmp(lic_state(&l, 2000, &eff), "EXPIRED") == 0);
	CHECK(strcmp(eff, "expired") == 0);
	l.grace_until = 3000;	/* payment failed: valid through grace */
	CHECK(strcmp(lic_state(&l, 2500, &eff), "VALID") == 0);
	CHECK(lic_valid_until(&l) == 3000);
	CHECK(strcmp(lic_state(&l, 3000, &eff), "EXPIRED") == 0);
	strcpy(l.status, "revoked");
	CHECK(strcmp(lic_state(&l, 0, &eff), "REVOKED") == 0);
	strcpy(l.status, "suspended");
	CHECK(strcmp(lic_state(&l, 0, &eff), "SUSPENDED") == 0);
	strcpy(l.status, "expired");
	CHECK(strcmp(lic_state(&l, 0, &eff), "EXPIRED") == 0);
}

static void test_features(void)
{
	struct lic l;

	memset(&l, 0, sizeof(l));
	l.features = json_tokener_parse("[\"sso\",\"workflows\"]");
	l.limits = json_tokener_parse("{\"installations\":3,\"x\":1.5}");
	CHECK(lic_has_feature(&l, "sso"));
	CHECK(!lic_has_feature(&l, "ss"));
	CHECK(!lic_has_feature(&l, "audit"));
	CHECK(lic_limit(&l, "installations") == 3);
	CHECK(lic_limit(&l, "missing") == -1);
	CHECK(lic_limit(&l, "x") == -1);
	json_object_put(l.features);
	json_object_put(l.limits);
}

static void test_misc(void)
{
	char ts[32];

	CHECK(lic_uuid_valid("0b7c6f0e-1a2b-4c3d-8e9f-001122334455"));
	CHECK(!lic_uuid_valid("0b7c6f0e-1a2b-4c3d-8e9f-00112233445"));
	CHECK(!lic_uuid_valid("0b7c6f0e11a2b-4c3d-8e9f-001122334455"));
	CHECK(!lic_uuid_valid("zb7c6f0e-1a2b-4c3d-8e9f-001122334455"));
	CHECK(!lic_uuid_valid(NULL));
	lic_ts(1801353600LL, ts);
	CHECK(strcmp(ts, "2027-01-31T00:00:00Z") == 0);
}

int main(void)
{
	test_match();
	test_allowed();
	test_state();
	test_features();
	test_misc();
	UNIT_DONE("domain/license rules");
}
