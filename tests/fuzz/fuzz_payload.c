/*
 * Fuzz target: the Redis-payload path. Bytes published on a room channel reach a gateway
 * unchecked (any Redis client may publish); they are framed once (gw_frame_new), compressed
 * once per window (gw_frame_deflated, 9..15) and appended by reference to outputs
 * (gw_frame_append), or taken for a who query (proto_decode_who). Every frame must carry the
 * payload exactly, behind a correct header. The real dispatch, rooms.c's on_bus_message
 * (included for its statics), also runs for a room of this worker, with and without the
 * presence limit passed; the room has no sessions, so nothing is delivered.
 *
 * Input: byte 0: bit 0 the room counts as over the presence limit, bits 1-7 the length of
 * the channel name that follows (up to 127 bytes); byte 1: bits 1-3 the window to compress
 * with (9 + b; 7: every window from 9 to 15, in turn), and bits 0 and 4-7 all set stretch the
 * payload (the rest of the input, repeated past 64 KiB, for the 8-byte length form; it is
 * slow, so mutations seldom hit it).
 */
#include "gateway/rooms.c"

#include <event2/buffer.h>
#include <zlib.h>

#include "proto/channel.h"
#include "tests/fuzz/fuzz.h"

#define ROOM_NAME "lobby"

static struct gw_config config;
static struct gw_stats stats;
static struct gw_rooms rooms;
static struct gw_room *room;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    proto_init(xmalloc, free);
    gw_config_init(&config);
    rooms.cfg = &config;
    rooms.stats = &stats;
    room = xcalloc(1, sizeof(*room));
    memcpy(room->name, ROOM_NAME, sizeof(ROOM_NAME));
    TAILQ_INIT(&room->members);
    HASH_ADD(hh, rooms.rooms, name, strlen(ROOM_NAME), room);
    return 0;
}

/* ---- frames ------------------------------------------------------------------------------ */

/* Check the frame at buf[0..len): FIN, RSV1 as compressed says, the opcode, no mask, the
 * shortest length form, and a length that covers the rest exactly. Returns the header size. */
static size_t check_header(const uint8_t *buf, size_t len, int compressed)
{
    uint64_t plen = buf[1] & 0x7f;
    size_t hlen = plen == 126 ? 4 : plen == 127 ? 10 : 2;

    FUZZ_CHECK(len >= hlen);
    FUZZ_CHECK(buf[0] == (0x80 | (compressed ? 0x40 : 0) | GW_FRAME_TEXT));
    FUZZ_CHECK((buf[1] & 0x80) == 0);
    if (hlen > 2) {
        plen = 0;
        for (size_t i = 2; i < hlen; i++)
            plen = plen << 8 | buf[i];
        FUZZ_CHECK(hlen == 4 ? plen >= 126 && plen <= 0xffff : plen > 0xffff);
    }
    FUZZ_CHECK(plen == len - hlen);
    return hlen;
}

/* Inflate a compressed frame's payload as a client would (RFC 7692 7.2.2) and compare. */
static void check_inflates_to(const uint8_t *z, size_t zlen, unsigned bits, const uint8_t *want,
                              size_t want_len)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    uint8_t *out = malloc(want_len + 1);
    z_stream s;

    memset(&s, 0, sizeof(s));
    FUZZ_CHECK(out != NULL && inflateInit2(&s, -(int)bits) == Z_OK);
    s.next_out = out;
    s.avail_out = (uInt)(want_len + 1);
    s.next_in = (Bytef *)(uintptr_t)z;
    s.avail_in = (uInt)zlen;
    FUZZ_CHECK(inflate(&s, Z_SYNC_FLUSH) == Z_OK && s.avail_in == 0);
    s.next_in = (Bytef *)(uintptr_t)tail;
    s.avail_in = sizeof(tail);
    FUZZ_CHECK(inflate(&s, Z_SYNC_FLUSH) == Z_OK && s.avail_in == 0);
    FUZZ_CHECK(s.avail_out == 1 && memcmp(out, want, want_len) == 0);
    inflateEnd(&s);
    free(out);
}

/* Append f to out by reference and check the bytes that land there. */
static void check_appended(struct gw_frame *f, const uint8_t *payload, size_t len, unsigned bits)
{
    struct evbuffer *out = evbuffer_new();
    const uint8_t *buf;
    size_t n, hlen;

    FUZZ_CHECK(gw_frame_append(f, out) == 0);
    FUZZ_CHECK(gw_frame_append(f, out) == 0);
    n = evbuffer_get_length(out);
    FUZZ_CHECK(n == 2 * gw_frame_size(f));
    buf = evbuffer_pullup(out, -1);
    FUZZ_CHECK(memcmp(buf, buf + n / 2, n / 2) == 0);
    hlen = check_header(buf, n / 2, bits != 0);
    if (bits == 0)
        FUZZ_CHECK(len == 0 || memcmp(buf + hlen, payload, len) == 0);
    else
        check_inflates_to(buf + hlen, n / 2 - hlen, bits, payload, len);
    /* Freeing the output drops its references: f lives on with the caller's. */
    evbuffer_free(out);
}

/* Frame the payload, then compress it with windows from..to. */
static void check_frames(const uint8_t *payload, size_t len, unsigned from, unsigned to)
{
    struct gw_frame *f = gw_frame_new(GW_FRAME_TEXT, payload, len);
    uint8_t hdr[GW_FRAME_HEADER_MAX];

    FUZZ_CHECK(gw_frame_size(f) == gw_frame_header(hdr, GW_FRAME_TEXT, len) + len);
    check_appended(f, payload, len, 0);
    for (unsigned bits = from; bits <= to; bits++) {
        struct gw_frame *d = gw_frame_deflated(f, bits);

        FUZZ_CHECK(d != NULL && gw_frame_deflated(f, bits) == d); /* built once */
        if (d == f)
            continue; /* compression would not make it smaller */
        FUZZ_CHECK(gw_frame_size(d) < gw_frame_size(f));
        check_appended(d, payload, len, bits);
    }
    gw_frame_unref(f);
}

/* ---- who queries and the dispatch -------------------------------------------------------------
 */

static void check_who(const uint8_t *payload, size_t len)
{
    char name[PROTO_ROOM_MAX + 1], reply_to[PROTO_ID_LEN + 1];

    if (proto_decode_who(payload, len, name, reply_to) < 0)
        return;
    FUZZ_CHECK(proto_is_room(name, strnlen(name, sizeof(name))));
    FUZZ_CHECK(proto_is_client_id(reply_to, strnlen(reply_to, sizeof(reply_to))));
}

/* What the bus does with a message on channel: its kind and name, then the rooms' handler. */
static void dispatch(const char *channel, size_t channel_len, const uint8_t *payload, size_t len,
                     int over_limit)
{
    const char *name = NULL;
    size_t name_len = 0;
    int kind = proto_channel_parse(channel, channel_len, &name, &name_len);

    FUZZ_CHECK(kind >= 0 && kind <= PROTO_CHANNEL_USER);
    if (kind == 0 || kind == PROTO_CHANNEL_HEALTH)
        return;
    FUZZ_CHECK(name >= channel && name + name_len == channel + channel_len && name_len > 0);
    room->n_members = over_limit ? config.presence_limit + 1 : 0;
    on_bus_message(&rooms, (enum proto_channel_kind)kind, name, name_len, payload, len);
}

/* A payload of len bytes or, stretched, src repeated to just over 64 KiB. Free with free(). */
static uint8_t *make_payload(const uint8_t *src, size_t *len, int stretch)
{
    size_t n = *len;
    uint8_t *p;

    if (!stretch || n == 0)
        return fuzz_dup(src, n);
    *len = (0x10000 / n + 1) * n;
    p = malloc(*len);
    FUZZ_CHECK(p != NULL);
    for (size_t off = 0; off < *len; off += n)
        memcpy(p + off, src, n);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    uint8_t b = fuzz_byte(&in), b1 = fuzz_byte(&in);
    unsigned bits = 9 + ((b1 >> 1) & 7);
    size_t channel_len = (size_t)(b >> 1) < in.len ? (size_t)(b >> 1) : in.len;
    char *channel = (char *)fuzz_dup(in.p, channel_len);
    size_t len = in.len - channel_len;
    int stretch = (b1 & 0xf1) == 0xf1;
    uint8_t *payload = make_payload(in.p + channel_len, &len, stretch);

    if (bits == 16)
        check_frames(payload, len, stretch ? 15 : 9, 15);
    else
        check_frames(payload, len, bits, bits);
    check_who(payload, len);
    dispatch(channel, channel_len, payload, len, b & 1);
    free(payload);
    free(channel);
    return 0;
}
