/*
 * Command-line options of the tools, from one table per tool (flag, CHAT_* twin, default,
 * help, parser), as the gateway's config.c does: defaults, then the environment, then argv;
 * the last one wins. The same table prints --help. The module keeps no state.
 */
#ifndef CHAT_TOOLS_OPTIONS_H
#define CHAT_TOOLS_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

/* How an option's text becomes a field of the tool's config (cfg, as passed to
 * tool_options_load); value is borrowed from argv, the environment or the table, and may be
 * kept. Returns 0, or -1 for a bad value. */
typedef int (*tool_option_parse_cb)(void *cfg, size_t offset, const char *value);

/* One row of a tool's table. */
struct tool_option {
    const char *flag;     /* without the leading "--" */
    const char *env;      /* CHAT_* twin, or NULL */
    const char *value;    /* name of the value in --help; NULL for a flag without one */
    const char *fallback; /* default, applied before the environment; NULL for none */
    const char *help;     /* one line for --help */
    tool_option_parse_cb parse;
    size_t offset; /* of the field in the tool's config, passed to parse */
};

/* A tool's table and how --help lays it out. */
struct tool_options {
    const struct tool_option *opts;
    size_t n;
    const char *positional; /* flag of the option a bare argument sets, or NULL: an error */
    int flag_width;         /* columns of "--flag VALUE" in --help */
    int env_width;          /* columns of the variable in --help (0: no padding) */
};

/* What tool_options_load found, besides errors. */
enum tool_options_result {
    TOOL_OPTIONS_RUN = 0, /* run the tool */
    TOOL_OPTIONS_HELP,    /* --help or -h: print the usage and exit 0 */
};

/*
 * Fill cfg (zeroed by the caller) from the fallbacks of t, then env (a NULL-terminated array
 * of "NAME=value" strings, as environ; may be NULL), then argv[1..argc) ("--flag value",
 * "--flag=value", or a bare argument for t->positional). Strings kept in cfg point into argv,
 * env or the table. Returns a tool_options_result, or -1 with a one-line message in err
 * (errlen bytes) that names the flag, variable or argument at fault. Checks that involve
 * several options are the caller's.
 */
int tool_options_load(const struct tool_options *t, void *cfg, int argc, char *const argv[],
                      char *const env[], char *err, size_t errlen);

/* Print each option of t (flag, value, variable, default, help) and "--help" to out. The
 * tool prints its usage line before and anything more after. */
void tool_options_usage(const struct tool_options *t, FILE *out);

/* Parsers for rows of any tool, each of the tool_option_parse_cb shape: */

/* Sets the int at offset to 1 (a flag without a value). Returns 0. */
int tool_option_flag(void *cfg, size_t offset, const char *value);

/* Keeps value as the const char * at offset if it is a room name (proto_is_room); else -1. */
int tool_option_room(void *cfg, size_t offset, const char *value);

/* The field at offset of cfg, of the given type. */
#define TOOL_OPTION_FIELD(cfg, offset, type) ((type *)(void *)((char *)(cfg) + (offset)))

#endif
