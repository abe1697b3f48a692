#include "broker-tools/term.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client.h"

static const char *tool_name = "?";

void term_set_name(const char *name)
{
    tool_name = name;
}

void term_notice(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "%s: ", tool_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void term_put_escaped(FILE *out, const void *s, size_t len, int keep_lines)
{
    size_t n;
    char *safe = proto_client_escape(s, len, keep_lines, &n);

    fwrite(safe, 1, n, out);
    free(safe);
}

void term_put_str(FILE *out, const char *s)
{
    term_put_escaped(out, s, strlen(s), 0);
}

int term_end_line(FILE *out)
{
    fputc('\n', out);
    return fflush(out) != 0 || ferror(out) ? -1 : 0;
}
