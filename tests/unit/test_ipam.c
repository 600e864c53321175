#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vxlan/ipam.h"

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static vx_ipam_t *mk(uint32_t net, int plen)
{
	na_err_t e = NA_ERR_INIT;
	vx_ipam_t *ip = NULL;
	if (vx_ipam_new(net, plen, &ip, &e) < 0)
		fail_msg("vx_ipam_new /%d: %s", plen, e.msg);
	return ip;
}

static void expect_err(const na_err_t *e, int status, const char *code, const char *field)
{
	assert_int_equal(e->status, status);
	assert_string_equal(e->code, code);
	assert_string_equal(e->field, field);
	assert_true(e->msg[0] != 0);
}

/* Allocates everything, checking the addresses come out lowest first and
 * match [first, first+count), then checks exhaustion. */
static void drain(vx_ipam_t *ip, uint32_t first, uint64_t count)
{
	na_err_t e = NA_ERR_INIT;
	uint32_t a;
	for (uint64_t i = 0; i < count; i++) {
		if (vx_ipam_alloc(ip, &a, &e) < 0)
			fail_msg("alloc %llu of %llu failed: %s", (unsigned long long)i,
				 (unsigned long long)count, e.msg);
		if (a != first + (uint32_t)i)
			fail_msg("alloc %llu gave %08x, want %08x", (unsigned long long)i, a,
				 first + (uint32_t)i);
	}
	assert_int_equal(vx_ipam_used(ip), count);
	assert_int_equal(vx_ipam_alloc(ip, &a, &e), -1);
	expect_err(&e, 409, "subnet_exhausted", "");
}

static void test_new_rejects(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	vx_ipam_t *ip = NULL;

	for (int p = 0; p < 8; p++) {
		na_err_clear(&e);
		assert_int_equal(vx_ipam_new(0, p, &ip, &e), -1);
		expect_err(&e, 422, "invalid_field", "subnet");
		assert_non_null(strstr(e.msg, "larger than /8"));
	}
	assert_null(ip);
	int badp[] = {-1, 33, 1000};
	for (size_t i = 0; i < sizeof(badp) / sizeof(badp[0]); i++) {
		na_err_clear(&e);
		assert_int_equal(vx_ipam_new(IP(198, 18, 0, 0), badp[i], &ip, &e), -1);
		expect_err(&e, 422, "invalid_field", "subnet");
	}
	/* host bits set */
	na_err_clear(&e);
	assert_int_equal(vx_ipam_new(IP(198, 18, 1, 5), 24, &ip, &e), -1);
	expect_err(&e, 422, "invalid_field", "subnet");
	assert_int_equal(vx_ipam_new(IP(198, 18, 1, 1), 31, &ip, &e), -1);
	assert_null(ip);
	vx_ipam_free(NULL);
}

static void test_slash32(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	uint32_t h = IP(192, 0, 2, 7);
	vx_ipam_t *ip = mk(h, 32);

	assert_int_equal(vx_ipam_reserve(ip, IP(192, 0, 2, 8), &e), -1);
	expect_err(&e, 422, "invalid_field", "ip");
	drain(ip, h, 1);
	assert_true(vx_ipam_in_use(ip, h));
	vx_ipam_release(ip, h);
	assert_int_equal(vx_ipam_used(ip), 0);
	assert_int_equal(vx_ipam_reserve(ip, h, &e), 0);
	na_err_clear(&e);
	assert_int_equal(vx_ipam_reserve(ip, h, &e), -1);
	expect_err(&e, 409, "ip_in_use", "ip");
	vx_ipam_free(ip);

	/* the top and bottom of the address space are fine as /32 */
	ip = mk(0xffffffffu, 32);
	drain(ip, 0xffffffffu, 1);
	vx_ipam_free(ip);
	ip = mk(0, 32);
	drain(ip, 0, 1);
	vx_ipam_free(ip);
}

static void test_slash31(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	uint32_t n = IP(198, 51, 100, 8);
	vx_ipam_t *ip = mk(n, 31);

	/* RFC 3021: both addresses are hosts */
	assert_int_equal(vx_ipam_reserve(ip, n, &e), 0);
	assert_int_equal(vx_ipam_reserve(ip, n + 1, &e), 0);
	assert_int_equal(vx_ipam_used(ip), 2);
	vx_ipam_release(ip, n);
	vx_ipam_release(ip, n + 1);
	drain(ip, n, 2);
	assert_int_equal(vx_ipam_reserve(ip, n + 2, &e), -1);
	expect_err(&e, 422, "invalid_field", "ip");
	assert_int_equal(vx_ipam_reserve(ip, n - 1, &e), -1);
	expect_err(&e, 422, "invalid_field", "ip");
	vx_ipam_free(ip);
}

static void test_slash30(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	uint32_t n = IP(203, 0, 113, 4);
	vx_ipam_t *ip = mk(n, 30);

	assert_int_equal(vx_ipam_reserve(ip, n, &e), -1);
	expect_err(&e, 422, "invalid_field", "ip");
	assert_non_null(strstr(e.msg, "network"));
	na_err_clear(&e);
	assert_int_equal(vx_ipam_reserve(ip, n + 3, &e), -1);
	expect_err(&e, 422, "invalid_field", "ip");
	assert_non_null(strstr(e.msg, "broadcast"));
	assert_int_equal(vx_ipam_used(ip), 0);
	drain(ip, n + 1, 2);
	vx_ipam_free(ip);
}

static void test_slash24(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	uint32_t n = IP(198, 18, 1, 0), a;
	vx_ipam_t *ip = mk(n, 24);

	/* network, broadcast and outside */
	assert_int_equal(vx_ipam_reserve(ip, n, &e), -1);
	expect_err(&e, 422, "invalid_field", "ip");
	assert_int_equal(vx_ipam_reserve(ip, IP(198, 18, 1, 255), &e), -1);
	expect_err(&e, 422, "invalid_field", "ip");
	assert_int_equal(vx_ipam_reserve(ip, IP(198, 18, 2, 1), &e), -1);
	expect_err(&e, 422, "invalid_field", "ip");
	assert_non_null(strstr(e.msg, "outside"));
	assert_int_equal(vx_ipam_reserve(ip, IP(198, 18, 0, 255), &e), -1);
	assert_int_equal(vx_ipam_reserve(ip, IP(192, 0, 2, 1), &e), -1);
	assert_false(vx_ipam_in_use(ip, n));
	assert_false(vx_ipam_in_use(ip, IP(192, 0, 2, 1)));
	assert_int_equal(vx_ipam_used(ip), 0);

	/* reserved addresses are skipped by alloc */
	assert_int_equal(vx_ipam_reserve(ip, IP(198, 18, 1, 1), &e), 0);
	assert_int_equal(vx_ipam_reserve(ip, IP(198, 18, 1, 3), &e), 0);
	assert_int_equal(vx_ipam_alloc(ip, &a, &e), 0);
	assert_int_equal(a, IP(198, 18, 1, 2));
	assert_int_equal(vx_ipam_alloc(ip, &a, &e), 0);
	assert_int_equal(a, IP(198, 18, 1, 4));
	na_err_clear(&e);
	assert_int_equal(vx_ipam_reserve(ip, IP(198, 18, 1, 4), &e), -1);
	expect_err(&e, 409, "ip_in_use", "ip");
	assert_int_equal(vx_ipam_used(ip), 4);

	/* release, then the lowest free address comes back first */
	vx_ipam_release(ip, IP(198, 18, 1, 3));
	assert_false(vx_ipam_in_use(ip, IP(198, 18, 1, 3)));
	assert_int_equal(vx_ipam_used(ip), 3);
	vx_ipam_release(ip, IP(198, 18, 1, 3)); /* twice: no-op */
	vx_ipam_release(ip, n);			/* foreign: no-op */
	vx_ipam_release(ip, IP(192, 0, 2, 1));
	assert_int_equal(vx_ipam_used(ip), 3);
	assert_int_equal(vx_ipam_alloc(ip, &a, &e), 0);
	assert_int_equal(a, IP(198, 18, 1, 3));
	vx_ipam_free(ip);

	/* full drain: 254 hosts, .1 to .254 */
	ip = mk(n, 24);
	drain(ip, n + 1, 254);
	assert_true(vx_ipam_in_use(ip, IP(198, 18, 1, 254)));
	vx_ipam_release(ip, IP(198, 18, 1, 200));
	vx_ipam_release(ip, IP(198, 18, 1, 100));
	assert_int_equal(vx_ipam_alloc(ip, &a, &e), 0);
	assert_int_equal(a, IP(198, 18, 1, 100));
	assert_int_equal(vx_ipam_alloc(ip, &a, &e), 0);
	assert_int_equal(a, IP(198, 18, 1, 200));
	na_err_clear(&e);
	assert_int_equal(vx_ipam_alloc(ip, &a, &e), -1);
	expect_err(&e, 409, "subnet_exhausted", "");
	vx_ipam_free(ip);
}

/* Sizes around the 64-bit word boundary of the bitmap. */
static void test_word_boundaries(void **state)
{
	(void)state;
	for (int p = 23; p <= 29; p++) {
		uint32_t n = IP(198, 18, 0, 0);
		vx_ipam_t *ip = mk(n, p);
		drain(ip, n + 1, (1ULL << (32 - p)) - 2);
		vx_ipam_free(ip);
	}
}

static void test_slash16(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	uint32_t n = IP(198, 19, 0, 0), a;
	vx_ipam_t *ip = mk(n, 16);

	assert_int_equal(vx_ipam_reserve(ip, IP(198, 19, 255, 255), &e), -1);
	expect_err(&e, 422, "invalid_field", "ip");
	assert_int_equal(vx_ipam_reserve(ip, IP(198, 19, 255, 254), &e), 0);
	vx_ipam_release(ip, IP(198, 19, 255, 254));
	drain(ip, n + 1, 65534);
	vx_ipam_release(ip, IP(198, 19, 128, 0));
	assert_int_equal(vx_ipam_alloc(ip, &a, &e), 0);
	assert_int_equal(a, IP(198, 19, 128, 0));
	vx_ipam_free(ip);
}

static void test_slash8(void **state)
{
	(void)state;
	na_err_t e = NA_ERR_INIT;
	uint32_t a;
	vx_ipam_t *ip = mk(IP(198, 0, 0, 0), 8);

	assert_int_equal(vx_ipam_alloc(ip, &a, &e), 0);
	assert_int_equal(a, IP(198, 0, 0, 1));
	assert_int_equal(vx_ipam_reserve(ip, IP(198, 255, 255, 254), &e), 0);
	assert_int_equal(vx_ipam_reserve(ip, IP(198, 255, 255, 255), &e), -1);
	expect_err(&e, 422, "invalid_field", "ip");
	assert_int_equal(vx_ipam_reserve(ip, IP(199, 0, 0, 1), &e), -1);
	assert_int_equal(vx_ipam_used(ip), 2);
	vx_ipam_free(ip);

	/* the last /8 of the address space does not overflow */
	ip = mk(IP(255, 0, 0, 0), 8);
	assert_int_equal(vx_ipam_reserve(ip, IP(255, 255, 255, 254), &e), 0);
	assert_int_equal(vx_ipam_reserve(ip, IP(255, 255, 255, 255), &e), -1);
	assert_int_equal(vx_ipam_alloc(ip, &a, &e), 0);
	assert_int_equal(a, IP(255, 0, 0, 1));
	vx_ipam_free(ip);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_rejects), cmocka_unit_test(test_slash32),
	    cmocka_unit_test(test_slash31),	cmocka_unit_test(test_slash30),
	    cmocka_unit_test(test_slash24),	cmocka_unit_test(test_word_boundaries),
	    cmocka_unit_test(test_slash16),	cmocka_unit_test(test_slash8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
