#include "broker-tools/roomlist.h"

#include <stdio.h>
#include <string.h>

struct roomlist_entry *roomlist_find(struct roomlist *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->rooms[i].name, name) == 0)
            return &l->rooms[i];
    return NULL;
}

void roomlist_add(struct roomlist *l, const char *name, int joined)
{
    struct roomlist_entry *r = roomlist_find(l, name);

    if (r == NULL && l->n < ROOMLIST_MAX) {
        r = &l->rooms[l->n++];
        snprintf(r->name, sizeof(r->name), "%s", name);
    }
    if (r)
        r->joined = r->joined || joined;
}

/* Drop the entry r, keeping the others in order. */
static void drop(struct roomlist *l, struct roomlist_entry *r)
{
    size_t i = (size_t)(r - l->rooms);

    memmove(r, r + 1, (l->n - i - 1) * sizeof(*r));
    l->n--;
}

void roomlist_talk_in(struct roomlist *l, const char *name)
{
    struct roomlist_entry *r = roomlist_find(l, name);

    if (name != l->current)
        snprintf(l->current, sizeof(l->current), "%s", name);
    if (r == NULL)
        return;
    struct roomlist_entry keep = *r;
    drop(l, r);
    l->rooms[l->n++] = keep;
}

int roomlist_remove(struct roomlist *l, const char *name)
{
    struct roomlist_entry *r = roomlist_find(l, name);

    if (r == NULL)
        return 0;
    drop(l, r);
    if (strcmp(l->current, name) != 0)
        return 0;
    l->current[0] = '\0';
    for (size_t i = l->n; i-- > 0;) {
        if (l->rooms[i].joined) {
            memcpy(l->current, l->rooms[i].name, sizeof(l->current));
            break;
        }
    }
    return 1;
}
