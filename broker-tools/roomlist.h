/*
 * chatcat's rooms: the ones it is in or joining, kept in the order they were last talked in,
 * and the current one, where typed lines go. A plain value with a fixed capacity: no
 * allocation, no output.
 */
#ifndef CHAT_TOOLS_ROOMLIST_H
#define CHAT_TOOLS_ROOMLIST_H

#include <stddef.h>

#include "proto/proto.h"

#define ROOMLIST_MAX 256 /* rooms remembered; more are not listed (the gateway caps far lower) */

struct roomlist_entry {
    char name[PROTO_ROOM_MAX + 1];
    int joined; /* 0: join sent, our own presence not seen yet */
};

/* Held by value; all zeroes is an empty list with no current room. */
struct roomlist {
    struct roomlist_entry rooms[ROOMLIST_MAX]; /* last talked in last */
    size_t n;
    char current[PROTO_ROOM_MAX + 1]; /* where lines go; "" when in no room */
};

/* The entry of name, or NULL. The pointer is valid until the list next changes. */
struct roomlist_entry *roomlist_find(struct roomlist *l, const char *name);

/* Add name (a room name, borrowed) if it is not listed and there is room; mark it joined
 * if joined is 1 (a joined room stays joined). */
void roomlist_add(struct roomlist *l, const char *name, int joined);

/* Make name the current room and, when listed, the last of the list. name may be
 * l->current itself. */
void roomlist_talk_in(struct roomlist *l, const char *name);

/* Forget name. Returns 1 if it was the current room: the current room is then the joined
 * room talked in last, or "" when there is none. Returns 0 otherwise (also when name was
 * not listed). */
int roomlist_remove(struct roomlist *l, const char *name);

#endif
