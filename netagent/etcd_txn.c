/* Transaction builder: compares, then/else ops, submitted as one
 * /v3/kv/txn. Elections and claims are written with it, e.g. a claim:
 *   cmp_create(key, EQUAL, 0); put(THEN, key, me); get(ELSE, key)
 * whose else branch says who holds the key, from the same revision. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "netagent/etcd_int.h"
#include "netagent/util.h"

struct na_etcd_txn {
	json_t *cmp, *ops[2]; /* ops[NA_ETCD_ELSE] = failure, ops[NA_ETCD_THEN] = success */
	char why[128];	      /* first builder failure, reported at submit */
};

na_etcd_txn_t *na_etcd_txn_new(void)
{
	na_etcd_txn_t *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->cmp = json_array();
	t->ops[0] = json_array();
	t->ops[1] = json_array();
	if (!t->cmp || !t->ops[0] || !t->ops[1]) {
		na_etcd_txn_free(t);
		return NULL;
	}
	return t;
}

void na_etcd_txn_free(na_etcd_txn_t *t)
{
	if (!t)
		return;
	json_decref(t->cmp);
	json_decref(t->ops[0]);
	json_decref(t->ops[1]);
	free(t);
}

static void bad(na_etcd_txn_t *t, const char *why)
{
	if (t && !t->why[0])
		snprintf(t->why, sizeof(t->why), "%s", why);
}

static const char *cmp_name(enum na_etcd_cmp op)
{
	switch (op) {
	case NA_ETCD_EQUAL:
		return "EQUAL";
	case NA_ETCD_NOT_EQUAL:
		return "NOT_EQUAL";
	case NA_ETCD_GREATER:
		return "GREATER";
	case NA_ETCD_LESS:
		return "LESS";
	}
	return NULL;
}

/* {"key","target","result",field: val}; val is taken over. */
static void add_cmp(na_etcd_txn_t *t, const char *key, const char *target, enum na_etcd_cmp op,
		    const char *field, json_t *val)
{
	const char *res = cmp_name(op);
	if (!t || !key || !res || !val) {
		json_decref(val);
		bad(t, !val ? "out of memory" : !res ? "unknown compare" : "compare without a key");
		return;
	}
	json_t *c = etcd_key_req(key, 0);
	if (!c) {
		json_decref(val);
		bad(t, "out of memory");
		return;
	}
	/* json_object_set_new takes val over even when it fails */
	if (json_object_set_new(c, "target", json_string(target)) < 0 ||
	    json_object_set_new(c, "result", json_string(res)) < 0 ||
	    json_object_set_new(c, field, val) < 0) {
		json_decref(c);
		bad(t, "out of memory");
		return;
	}
	if (json_array_append_new(t->cmp, c) < 0)
		bad(t, "out of memory");
}

void na_etcd_txn_cmp_value(na_etcd_txn_t *t, const char *key, enum na_etcd_cmp op,
			   const void *value, size_t len)
{
	add_cmp(t, key, "VALUE", op, "value", etcd_jb64(value ? value : "", len));
}

void na_etcd_txn_cmp_version(na_etcd_txn_t *t, const char *key, enum na_etcd_cmp op, int64_t v)
{
	add_cmp(t, key, "VERSION", op, "version", etcd_jint64(v));
}

void na_etcd_txn_cmp_create(na_etcd_txn_t *t, const char *key, enum na_etcd_cmp op, int64_t rev)
{
	add_cmp(t, key, "CREATE", op, "create_revision", etcd_jint64(rev));
}

void na_etcd_txn_cmp_mod(na_etcd_txn_t *t, const char *key, enum na_etcd_cmp op, int64_t rev)
{
	add_cmp(t, key, "MOD", op, "mod_revision", etcd_jint64(rev));
}

void na_etcd_txn_cmp_lease(na_etcd_txn_t *t, const char *key, enum na_etcd_cmp op, int64_t lease)
{
	add_cmp(t, key, "LEASE", op, "lease", etcd_jint64(lease));
}

/* {name: req} appended to branch b; req is taken over. */
static void add_op(na_etcd_txn_t *t, enum na_etcd_branch b, const char *name, json_t *req)
{
	if (!t || (b != NA_ETCD_THEN && b != NA_ETCD_ELSE) || !req) {
		json_decref(req);
		bad(t, !req ? "out of memory or op without a key" : "unknown branch");
		return;
	}
	json_t *op = json_object();
	if (!op) {
		json_decref(req);
		bad(t, "out of memory");
		return;
	}
	if (json_object_set_new(op, name, req) < 0) {
		json_decref(op);
		bad(t, "out of memory");
		return;
	}
	if (json_array_append_new(t->ops[b], op) < 0)
		bad(t, "out of memory");
}

void na_etcd_txn_put(na_etcd_txn_t *t, enum na_etcd_branch b, const char *key, const void *value,
		     size_t len, int64_t lease)
{
	add_op(t, b, "request_put", key ? etcd_put_req(key, value, len, lease) : NULL);
}

void na_etcd_txn_delete(na_etcd_txn_t *t, enum na_etcd_branch b, const char *key, int prefix)
{
	add_op(t, b, "request_delete_range", key ? etcd_key_req(key, prefix) : NULL);
}

void na_etcd_txn_get(na_etcd_txn_t *t, enum na_etcd_branch b, const char *key, int prefix)
{
	add_op(t, b, "request_range", key ? etcd_key_req(key, prefix) : NULL);
}

json_t *na_etcd_txn_json(const na_etcd_txn_t *t)
{
	if (!t)
		return NULL;
	/* copies: the builder may go on after this */
	return json_pack("{s:o,s:o,s:o}", "compare", json_deep_copy(t->cmp), "success",
			 json_deep_copy(t->ops[NA_ETCD_THEN]), "failure",
			 json_deep_copy(t->ops[NA_ETCD_ELSE]));
}

int na_etcd_txn(na_etcd_t *e, na_etcd_txn_t *t, const na_etcd_opts_t *opts, na_etcd_cb cb, void *ud,
		na_err_t *err)
{
	if (!t)
		return na_err_errno(err, ENOMEM, "etcd txn");
	if (t->why[0]) {
		na_err_set(err, 500, NA_ETCD_EERROR, NULL, "etcd txn not built: %s", t->why);
		na_etcd_txn_free(t);
		return -1;
	}
	json_t *req = json_pack("{s:O,s:O,s:O}", "compare", t->cmp, "success", t->ops[NA_ETCD_THEN],
				"failure", t->ops[NA_ETCD_ELSE]);
	na_etcd_txn_free(t);
	return etcd_call_start(e, ETCD_K_TXN, "/v3/kv/txn", req, opts, cb, ud, err);
}
