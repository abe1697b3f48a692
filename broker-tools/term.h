/*
 * Terminal output shared by the tools: text from the wire written escaped (never a control
 * sequence of its own), lines flushed one by one so that a closed reader is noticed, and
 * notices on stderr that begin with the tool's name. Single-threaded use only.
 */
#ifndef CHAT_TOOLS_TERM_H
#define CHAT_TOOLS_TERM_H

#include <stddef.h>
#include <stdio.h>

/* Name the notices begin with ("chatcat"); name is borrowed for the life of the process.
 * Call once in main before any notice. */
void term_set_name(const char *name);

/* "name: " and the formatted text on a line of stderr, after stdout is flushed so that the
 * two stay in order on a terminal. */
void term_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write s[0..len) to out escaped by proto_client_escape (keep_lines: newlines and tabs pass
 * as they are). */
void term_put_escaped(FILE *out, const void *s, size_t len, int keep_lines);

/* term_put_escaped of the NUL-terminated s, without keep_lines. */
void term_put_str(FILE *out, const char *s);

/* End a line on out and flush it. Returns 0, or -1 when out is gone (a reader such as
 * head(1) exited): the caller stops writing and winds down. */
int term_end_line(FILE *out);

#endif
