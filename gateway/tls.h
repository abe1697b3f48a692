/*
 * TLS for wss:// served by the gateway itself: one OpenSSL server context per worker from a
 * certificate chain and key in PEM files, and a new TLS session per accepted connection.
 */
#ifndef CHAT_GATEWAY_TLS_H
#define CHAT_GATEWAY_TLS_H

#include <stddef.h>

struct ssl_ctx_st;
struct ssl_st;

/*
 * A server context for the certificate chain in cert_file and the private key in key_file
 * (PEM), TLS 1.2 or later. Returns it (free with gw_tls_ctx_free), or NULL with a message in
 * err naming the file and OpenSSL's reason.
 */
struct ssl_ctx_st *gw_tls_ctx_new(const char *cert_file, const char *key_file, char *err,
                                  size_t errlen);

/* Free a context; NULL does nothing. */
void gw_tls_ctx_free(struct ssl_ctx_st *ctx);

/* A TLS session for one connection, owned by the caller (the bufferevent takes it). */
struct ssl_st *gw_tls_session_new(struct ssl_ctx_st *ctx);

#endif
