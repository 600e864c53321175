/* Server-side TLS policy: TLS 1.2 or newer, and a client certificate that
 * chains to --tls-ca is mandatory (mutual TLS). OpenSSL's default
 * verification already rejects expired and foreign-CA certificates; we only
 * make the client certificate required instead of optional. */
#include "netagent/http.h"
#include "netagent/util.h"

#include <openssl/err.h>

static int ssl_fail(na_err_t *err, const char *what, const char *path)
{
	char ebuf[256] = "unknown error";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	ERR_clear_error();
	return na_err_set(err, 500, "tls_error", NULL, "%s %s: %s", what, path ? path : "", ebuf);
}

SSL_CTX *na_tls_server_ctx(const char *cert, const char *key, const char *ca, na_err_t *err)
{
	if (!cert || !key || !ca) {
		na_err_set(
		    err, 422, "invalid_field", "tls",
		    "--listen needs --tls-cert, --tls-key and --tls-ca (mutual TLS is mandatory)");
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ssl_fail(err, "create TLS context", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ssl_fail(err, "load certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		ssl_fail(err, "load private key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_fail(err, "private key does not match certificate", cert);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		ssl_fail(err, "load CA", ca);
		goto fail;
	}
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
	if (names)
		SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"netagent", 8);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
