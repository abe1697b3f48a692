#include "proto/utf8.h"

#include <string.h>

void proto_utf8_init(struct proto_utf8 *st)
{
    memset(st, 0, sizeof(*st));
}

/* Set up the state for the lead byte c; return -1 if c cannot start a code point. */
static int lead(struct proto_utf8 *st, uint8_t c)
{
    st->lo = 0x80;
    st->hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        st->need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        st->need = 2;
        if (c == 0xe0)
            st->lo = 0xa0; /* overlong below U+0800 */
        else if (c == 0xed)
            st->hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        st->need = 3;
        if (c == 0xf0)
            st->lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xf4)
            st->hi = 0x8f; /* above U+10FFFF */
    } else {
        return -1; /* continuation byte, overlong C0/C1, or F5..FF */
    }
    return 0;
}

/* Length of the run of ASCII bytes at the start of buf. */
static size_t ascii_run(const uint8_t *buf, size_t len)
{
    size_t i = 0;

    while (i + 8 <= len) {
        uint64_t w;

        memcpy(&w, buf + i, 8);
        if (w & 0x8080808080808080ull)
            break;
        i += 8;
    }
    while (i < len && buf[i] < 0x80)
        i++;
    return i;
}

int proto_utf8_feed(struct proto_utf8 *st, const uint8_t *buf, size_t len)
{
    size_t i = 0;

    if (st->bad)
        return -1;
    while (i < len) {
        uint8_t c = buf[i];

        if (st->need == 0) {
            if (c < 0x80) {
                i += ascii_run(buf + i, len - i);
                continue;
            }
            if (lead(st, c) < 0)
                goto bad;
        } else {
            if (c < st->lo || c > st->hi)
                goto bad;
            st->need--;
            st->lo = 0x80;
            st->hi = 0xbf;
        }
        i++;
    }
    return 0;
bad:
    st->bad = 1;
    return -1;
}

int proto_utf8_is_complete(const struct proto_utf8 *st)
{
    return !st->bad && st->need == 0;
}

int proto_utf8_is_valid(const uint8_t *buf, size_t len)
{
    struct proto_utf8 st;

    proto_utf8_init(&st);
    return proto_utf8_feed(&st, buf, len) == 0 && proto_utf8_is_complete(&st);
}
