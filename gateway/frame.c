#include "gateway/frame.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/deflate.h"
#include "gateway/util.h"

/* Messages shorter than this are never compressed: the saving would not pay for itself. */
#define FRAME_DEFLATE_MIN 64

struct gw_frame {
    unsigned refs;
    uint16_t tried;               /* window sizes whose compression was tried (bit per size) */
    struct gw_frame *deflated[7]; /* by window bits 9..15; NULL when not smaller */
    size_t header_len;
    size_t len;     /* bytes in data */
    uint8_t data[]; /* header, then payload */
};

size_t gw_frame_header(uint8_t hdr[GW_FRAME_HEADER_MAX], enum gw_frame_opcode opcode, size_t len)
{
    hdr[0] = (uint8_t)(0x80u | (unsigned)opcode);
    if (len < 126) {
        hdr[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

int gw_frame_write(struct evbuffer *out, enum gw_frame_opcode opcode, const uint8_t *payload,
                   size_t len)
{
    uint8_t hdr[GW_FRAME_HEADER_MAX];
    size_t n = gw_frame_header(hdr, opcode, len);

    if (evbuffer_add(out, hdr, n) < 0)
        return -1;
    return len ? evbuffer_add(out, payload, len) : 0;
}

struct gw_frame *gw_frame_new(enum gw_frame_opcode opcode, const uint8_t *payload, size_t len)
{
    uint8_t hdr[GW_FRAME_HEADER_MAX];
    size_t n = gw_frame_header(hdr, opcode, len);
    struct gw_frame *f = xmalloc(sizeof(*f) + n + len);

    memset(f, 0, sizeof(*f));
    f->refs = 1;
    f->header_len = n;
    f->len = n + len;
    memcpy(f->data, hdr, n);
    if (len)
        memcpy(f->data + n, payload, len);
    return f;
}

void gw_frame_ref(struct gw_frame *f)
{
    if (f)
        f->refs++;
}

void gw_frame_unref(struct gw_frame *f)
{
    if (f == NULL)
        return;
    assert(f->refs > 0);
    if (--f->refs == 0) {
        for (size_t i = 0; i < sizeof(f->deflated) / sizeof(f->deflated[0]); i++)
            gw_frame_unref(f->deflated[i]);
        free(f);
    }
}

struct gw_frame *gw_frame_deflated(struct gw_frame *f, unsigned window_bits)
{
    size_t plen = f->len - f->header_len;
    uint8_t *z;
    size_t zlen;

    assert(window_bits >= 9 && window_bits <= 15);
    if (!(f->tried & (1u << window_bits))) {
        f->tried |= (uint16_t)(1u << window_bits);
        if (plen >= FRAME_DEFLATE_MIN &&
            gw_deflate_compress(window_bits, f->data + f->header_len, plen, &z, &zlen) == 0) {
            if (zlen < plen) {
                struct gw_frame *c =
                    gw_frame_new((enum gw_frame_opcode)(f->data[0] & 0x0f), z, zlen);
                c->data[0] |= 0x40; /* RSV1: a compressed message (RFC 7692 6) */
                f->deflated[window_bits - 9] = c;
            }
            free(z);
        }
    }
    return f->deflated[window_bits - 9] ? f->deflated[window_bits - 9] : f;
}

static void on_written(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    gw_frame_unref(arg);
}

int gw_frame_append(struct gw_frame *f, struct evbuffer *out)
{
    gw_frame_ref(f);
    if (evbuffer_add_reference(out, f->data, f->len, on_written, f) < 0) {
        gw_frame_unref(f);
        return -1;
    }
    return 0;
}

size_t gw_frame_size(const struct gw_frame *f)
{
    return f->len;
}
