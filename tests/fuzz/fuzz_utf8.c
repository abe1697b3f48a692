/*
 * Fuzz target: proto/utf8.h against a second implementation written here from RFC 3629
 * alone: decode each code point from its lead byte's bit pattern, then check its value
 * (no overlong form, no surrogate, nothing above U+10FFFF). The validator must agree with it
 * on the whole input, split in two at an input-chosen position, and fed one byte at a time
 * (where it must fail exactly at the first byte that cannot belong to valid UTF-8).
 *
 * Input: bytes 0-1 the split position (modulo the text's length + 1); the rest is the text.
 */
#include "tests/fuzz/fuzz.h"

#include "proto/utf8.h"

/* ---- the reference ----------------------------------------------------------------------- */

/* Sequence length announced by lead byte c (0xxxxxxx 1, 110xxxxx 2, 1110xxxx 3, 11110xxx 4),
 * or 0 for a continuation byte or 11111xxx. */
static size_t seq_len(uint8_t c)
{
    if ((c & 0x80) == 0)
        return 1;
    if ((c & 0xe0) == 0xc0)
        return 2;
    if ((c & 0xf0) == 0xe0)
        return 3;
    if ((c & 0xf8) == 0xf0)
        return 4;
    return 0;
}

/* 1 if some code point in [lo, hi] is one a sequence of n bytes may encode, else 0. */
static int range_has_valid(uint32_t lo, uint32_t hi, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};

    if (lo < min_cp[n])
        lo = min_cp[n];
    if (hi > 0x10ffff)
        hi = 0x10ffff;
    if (lo > hi)
        return 0;
    /* [lo, hi] holds something outside the surrogates U+D800..U+DFFF. */
    return lo < 0xd800 || hi > 0xdfff;
}

/*
 * Where buf[0..len) stops being a prefix of valid UTF-8: the index of the first byte after
 * which no continuation can make it valid, or len if there is none. *complete is set to 1
 * if buf is valid UTF-8 as it stands (it ends on a code point boundary). ends (len bytes,
 * zeroed by the caller) gets a 1 at the last byte of each valid code point.
 */
static size_t first_bad(const uint8_t *buf, size_t len, int *complete, uint8_t *ends)
{
    size_t i = 0;

    *complete = 1;
    while (i < len) {
        size_t n = seq_len(buf[i]);
        uint32_t cp;

        if (n == 0)
            return i;
        cp = n == 1 ? buf[i] : (uint32_t)(buf[i] & (0x7f >> n));
        for (size_t k = 1; k <= n; k++) {
            /* The first k bytes are known: cp's top bits. Could the rest make it valid? */
            size_t rest = 6 * (n - k);
            uint32_t lo = cp << rest, hi = (cp << rest) | ((1u << rest) - 1);

            if (!range_has_valid(lo, hi, n))
                return i + k - 1;
            if (k == n)
                break;
            if (i + k >= len) {
                *complete = 0; /* cut inside a code point, which may still be completed */
                return len;
            }
            if ((buf[i + k] & 0xc0) != 0x80)
                return i + k;
            cp = (cp << 6) | (buf[i + k] & 0x3f);
        }
        i += n;
        ends[i - 1] = 1;
    }
    return len;
}

/* ---- the checks -------------------------------------------------------------------------- */

static void check_whole(const uint8_t *text, size_t len, size_t bad, int complete)
{
    int valid = bad == len && complete;

    FUZZ_CHECK(proto_utf8_is_valid(text, len) == valid);
}

/* Feed text in two pieces cut at split: each feed fails exactly when the bytes so far hold
 * an error, and is_complete agrees at the end. */
static void check_split(const uint8_t *text, size_t len, size_t split, size_t bad, int complete)
{
    struct proto_utf8 st;
    uint8_t *a = fuzz_dup(text, split), *b = fuzz_dup(text + split, len - split);
    int rc1, rc2;

    proto_utf8_init(&st);
    rc1 = proto_utf8_feed(&st, a, split);
    rc2 = proto_utf8_feed(&st, b, len - split);
    FUZZ_CHECK(rc1 == (bad < split ? -1 : 0));
    FUZZ_CHECK(rc2 == (bad < len ? -1 : 0));
    FUZZ_CHECK(proto_utf8_is_complete(&st) == (bad == len && complete));
    free(a);
    free(b);
}

/* One byte at a time: the first failing feed is the byte the reference names, and the text
 * so far is complete exactly after the last byte of a code point. */
static void check_bytes(const uint8_t *text, size_t len, size_t bad, const uint8_t *ends)
{
    struct proto_utf8 st;

    proto_utf8_init(&st);
    for (size_t i = 0; i < len; i++) {
        int rc = proto_utf8_feed(&st, text + i, 1);

        FUZZ_CHECK(rc == (i < bad ? 0 : -1));
        FUZZ_CHECK(proto_utf8_is_complete(&st) == (i < bad && ends[i]));
    }
    FUZZ_CHECK(proto_utf8_feed(&st, text, 0) == (bad < len ? -1 : 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    size_t split = fuzz_byte(&in);
    uint8_t *text, *ends;
    size_t bad;
    int complete;

    split = split << 8 | fuzz_byte(&in);
    text = fuzz_dup(in.p, in.len);
    ends = calloc(in.len + 1, 1);
    split %= in.len + 1;
    bad = first_bad(text, in.len, &complete, ends);
    check_whole(text, in.len, bad, complete);
    check_split(text, in.len, split, bad, complete);
    check_bytes(text, in.len, bad, ends);
    free(ends);
    free(text);
    return 0;
}
