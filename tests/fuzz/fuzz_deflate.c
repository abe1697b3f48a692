/*
 * Fuzz target: permessage-deflate (gateway/deflate.h). The input is a Sec-WebSocket-Extensions
 * value for gw_deflate_negotiate_value, whose accepted parameters must be in range and whose
 * answer must itself be an offer we accept with the same windows; and it is a compressed
 * client message (in two parts, as two messages of one session) for gw_inflater_message with
 * a small limit, which must never pass the limit and must agree with a plain zlib inflate of
 * the same bytes.
 *
 * Input: byte 0: bits 0-2 the client window (8 + b), bit 3 reset (no context takeover);
 * byte 1: the limit (b * 16); bytes 2-3: where the second message starts; the rest is the
 * header value and the compressed data.
 */
#include "tests/fuzz/fuzz.h"

#include <zlib.h>

#include "gateway/deflate.h"

/* ---- negotiation ------------------------------------------------------------------------- */

static void check_params(const struct gw_deflate_params *p, const char *resp)
{
    static const char start[] = "permessage-deflate; server_no_context_takeover";

    FUZZ_CHECK(p->enabled == 1);
    FUZZ_CHECK(p->server_window_bits >= 9 && p->server_window_bits <= 15);
    FUZZ_CHECK(p->client_window_bits >= 8 && p->client_window_bits <= 15);
    FUZZ_CHECK(strnlen(resp, GW_DEFLATE_RESPONSE_MAX) < GW_DEFLATE_RESPONSE_MAX);
    FUZZ_CHECK(strncmp(resp, start, strlen(start)) == 0);
    for (const char *c = resp; *c; c++)
        FUZZ_CHECK(*c >= 0x20 && *c < 0x7f); /* goes into a header line */
}

static void check_negotiate(const uint8_t *buf, size_t len)
{
    char *value = (char *)fuzz_dup(buf, len);
    struct gw_deflate_params p, again;
    char resp[GW_DEFLATE_RESPONSE_MAX], resp2[GW_DEFLATE_RESPONSE_MAX];

    memset(&p, 0, sizeof(p));
    memset(resp, 0, sizeof(resp));
    if (gw_deflate_negotiate_value(value, len, &p, resp)) {
        check_params(&p, resp);
        /* Our answer, read as an offer, is accepted with the same windows. */
        memset(&again, 0, sizeof(again));
        FUZZ_CHECK(gw_deflate_negotiate_value(resp, strlen(resp), &again, resp2) == 1);
        FUZZ_CHECK(again.server_window_bits == p.server_window_bits);
        FUZZ_CHECK(again.client_window_bits == p.client_window_bits);
        FUZZ_CHECK(again.client_no_context_takeover == p.client_no_context_takeover);
    } else {
        FUZZ_CHECK(p.enabled == 0);
    }
    free(value);
}

/* ---- inflation ----------------------------------------------------------------------------- */

enum ref_result { REF_OK, REF_CORRUPT, REF_TOO_BIG };

/* zlib's own reading of one message: in, then 00 00 ff ff, inflated raw with the window of
 * bits (9 at least) up to the end of the data or of the deflate stream, into at most max + 1
 * bytes. */
static enum ref_result ref_inflate(unsigned bits, const uint8_t *in, size_t len, size_t max,
                                   uint8_t *out, size_t *out_len)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    const uint8_t *parts[2] = {in, tail};
    size_t lens[2] = {len, sizeof(tail)};
    enum ref_result res = REF_OK;
    z_stream z;

    memset(&z, 0, sizeof(z));
    FUZZ_CHECK(inflateInit2(&z, -(int)(bits < 9 ? 9 : bits)) == Z_OK);
    z.next_out = out;
    z.avail_out = (uInt)(max + 1);
    for (int i = 0; i < 2 && res == REF_OK; i++) {
        z.next_in = (Bytef *)(uintptr_t)parts[i];
        z.avail_in = (uInt)lens[i];
        int rc = inflate(&z, Z_SYNC_FLUSH);
        if (z.avail_out == 0)
            res = REF_TOO_BIG; /* more than max came out, or would have */
        else if (rc == Z_STREAM_END)
            break;
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            res = REF_CORRUPT;
    }
    *out_len = max + 1 - z.avail_out;
    inflateEnd(&z);
    return res;
}

static void check_inflate(unsigned bits, int reset, const uint8_t *in, size_t len, size_t split,
                          size_t max)
{
    struct gw_inflater *z = gw_inflater_new(bits);
    uint8_t *a = fuzz_dup(in, split), *b = fuzz_dup(in + split, len - split);
    uint8_t *ref = malloc(max + 1);
    const uint8_t *out = NULL;
    size_t out_len = 0, ref_len;
    int rc = gw_inflater_message(z, a, split, max, reset, &out, &out_len);
    enum ref_result want = ref_inflate(bits, a, split, max, ref, &ref_len);

    FUZZ_CHECK(rc == GW_INFLATE_OK || rc == GW_INFLATE_CORRUPT || rc == GW_INFLATE_TOO_BIG);
    if (rc == GW_INFLATE_OK) {
        FUZZ_CHECK(out_len <= max);
        FUZZ_CHECK(want == REF_OK && ref_len == out_len);
        FUZZ_CHECK(out_len == 0 || memcmp(out, ref, out_len) == 0);
    } else if (rc == GW_INFLATE_TOO_BIG) {
        FUZZ_CHECK(want == REF_TOO_BIG);
    }
    gw_inflater_trim(z);
    /* The second message goes through the same session's inflater, its window kept unless
     * reset; no reference for it, only the limit. */
    rc = gw_inflater_message(z, b, len - split, max, reset, &out, &out_len);
    FUZZ_CHECK(rc == GW_INFLATE_OK || rc == GW_INFLATE_CORRUPT || rc == GW_INFLATE_TOO_BIG);
    if (rc == GW_INFLATE_OK) {
        FUZZ_CHECK(out_len <= max);
        for (size_t i = 0; i < out_len; i++)
            ref[i % (max + 1)] = out[i]; /* every byte readable */
    }
    gw_inflater_free(z);
    free(ref);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    uint8_t flags = fuzz_byte(&in);
    size_t max = (size_t)fuzz_byte(&in) * 16, split = fuzz_byte(&in);

    split = (split << 8 | fuzz_byte(&in)) % (in.len + 1);
    check_negotiate(in.p, in.len);
    check_inflate(8 + (flags & 7), (flags >> 3) & 1, in.p, in.len, split, max);
    return 0;
}
