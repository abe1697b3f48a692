/*
 * chatcat's lines for what the gateway sends: time, room, sender and text of each server
 * message, with SGR colour when asked, and every string from the wire escaped (term.h). It
 * writes to stdout and keeps no state: what a message changes (the room list, our id) is
 * chatcat's business.
 */
#ifndef CHAT_TOOLS_CHATVIEW_H
#define CHAT_TOOLS_CHATVIEW_H

#include <stddef.h>
#include <stdint.h>

#include "proto/client.h"

/* "HH:MM:SS " of ts_ms (Unix milliseconds; 0 for now, in local time), dimmed when color. */
void chatview_put_time(int color, uint64_t ts_ms);

/* The line for the decoded server message m, without its newline (end it with
 * term_end_line). self_id is our client id ("" before welcome): presence about it says
 * "(you)". A who query (PROTO_S_WHO) travels between gateways and prints nothing here:
 * show its frame with chatview_put_unknown. */
void chatview_put_msg(int color, const struct proto_server_msg *m, const char *self_id);

/* The line for a frame that is not a server message we know: "? " and the frame escaped,
 * without its newline. */
void chatview_put_unknown(int color, const uint8_t *data, size_t len);

#endif
