#include "gateway/tls.h"

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static void fill_error(char *err, size_t errlen, const char *what, const char *file)
{
    char reason[256] = "unknown error";
    unsigned long e = ERR_get_error();

    if (e)
        ERR_error_string_n(e, reason, sizeof(reason));
    snprintf(err, errlen, "%s \"%s\": %s", what, file, reason);
    ERR_clear_error();
}

struct ssl_ctx_st *gw_tls_ctx_new(const char *cert_file, const char *key_file, char *err,
                                  size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL) {
        fill_error(err, errlen, "cannot create a TLS context for", cert_file);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        fill_error(err, errlen, "cannot load the TLS certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        fill_error(err, errlen, "cannot load the TLS key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        fill_error(err, errlen, "the TLS key does not match the certificate", key_file);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void gw_tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

struct ssl_st *gw_tls_session_new(struct ssl_ctx_st *ctx)
{
    return SSL_new(ctx);
}
