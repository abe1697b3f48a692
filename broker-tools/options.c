#include "broker-tools/options.h"

#include <string.h>

#include "proto/proto.h"

static int apply(const struct tool_option *o, void *cfg, const char *value, const char *source,
                 char *err, size_t errlen)
{
    if (o->parse(cfg, o->offset, value) < 0) {
        snprintf(err, errlen, "invalid value \"%s\" for %s", value, source);
        return -1;
    }
    return 0;
}

static int load_env(const struct tool_options *t, void *cfg, char *const env[], char *err,
                    size_t errlen)
{
    for (size_t i = 0; env && env[i]; i++) {
        for (size_t j = 0; j < t->n; j++) {
            const struct tool_option *o = &t->opts[j];
            size_t n = o->env ? strlen(o->env) : 0;

            if (n && strncmp(env[i], o->env, n) == 0 && env[i][n] == '=' &&
                apply(o, cfg, env[i] + n + 1, o->env, err, errlen) < 0)
                return -1;
        }
    }
    return 0;
}

static const struct tool_option *find_flag(const struct tool_options *t, const char *name,
                                           size_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->opts[i].flag) == len && strncmp(t->opts[i].flag, name, len) == 0)
            return &t->opts[i];
    return NULL;
}

/* A bare argument: the value of t->positional, named in errors as "the URL argument". */
static int load_positional(const struct tool_options *t, void *cfg, const char *arg, char *err,
                           size_t errlen)
{
    const struct tool_option *o =
        t->positional ? find_flag(t, t->positional, strlen(t->positional)) : NULL;
    char source[64];

    if (o == NULL) {
        snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", arg);
        return -1;
    }
    snprintf(source, sizeof(source), "the %s argument", o->value ? o->value : o->flag);
    return apply(o, cfg, arg, source, err, errlen);
}

/* One argument at argv[*i] (advanced past a separate value). Returns 0, 1 for --help, -1. */
static int load_arg(const struct tool_options *t, void *cfg, int argc, char *const argv[], int *i,
                    char *err, size_t errlen)
{
    const char *arg = argv[*i], *eq, *value = NULL;
    char source[64];

    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
        return TOOL_OPTIONS_HELP;
    if (strncmp(arg, "--", 2) != 0)
        return load_positional(t, cfg, arg, err, errlen);
    eq = strchr(arg + 2, '=');
    size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    const struct tool_option *o = find_flag(t, arg + 2, len);
    if (o == NULL) {
        snprintf(err, errlen, "unknown option \"%.*s\" (see --help)", (int)len + 2, arg);
        return -1;
    }
    if (eq && o->value == NULL) {
        snprintf(err, errlen, "option --%s takes no value", o->flag);
        return -1;
    }
    if (eq)
        value = eq + 1;
    else if (o->value && *i + 1 < argc)
        value = argv[++*i];
    if (o->value && value == NULL) {
        snprintf(err, errlen, "option --%s needs a value", o->flag);
        return -1;
    }
    snprintf(source, sizeof(source), "--%s", o->flag);
    return apply(o, cfg, value ? value : "", source, err, errlen);
}

int tool_options_load(const struct tool_options *t, void *cfg, int argc, char *const argv[],
                      char *const env[], char *err, size_t errlen)
{
    for (size_t j = 0; j < t->n; j++)
        if (t->opts[j].fallback &&
            apply(&t->opts[j], cfg, t->opts[j].fallback, "default", err, errlen) < 0)
            return -1;
    if (load_env(t, cfg, env, err, errlen) < 0)
        return -1;
    for (int i = 1; i < argc; i++) {
        int rc = load_arg(t, cfg, argc, argv, &i, err, errlen);
        if (rc != TOOL_OPTIONS_RUN)
            return rc;
    }
    return TOOL_OPTIONS_RUN;
}

void tool_options_usage(const struct tool_options *t, FILE *out)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct tool_option *o = &t->opts[i];
        char left[48], line[160];

        snprintf(left, sizeof(left), "--%s%s%s", o->flag, o->value ? " " : "",
                 o->value ? o->value : "");
        int n = snprintf(line, sizeof(line), "  %-*s %-*s %s%s", t->flag_width, left, t->env_width,
                         o->env ? o->env : "", o->fallback ? "default: " : "",
                         o->fallback ? o->fallback : "");

        if (n < 0 || (size_t)n >= sizeof(line))
            n = (int)strlen(line);
        while (n > 0 && line[n - 1] == ' ')
            line[--n] = '\0';
        fprintf(out, "%s\n      %s\n", line, o->help);
    }
    fprintf(out, "  --help\n");
}

/* ---- parsers ------------------------------------------------------------------------------ */

int tool_option_flag(void *cfg, size_t offset, const char *value)
{
    (void)value;
    *TOOL_OPTION_FIELD(cfg, offset, int) = 1;
    return 0;
}

int tool_option_room(void *cfg, size_t offset, const char *value)
{
    if (!proto_is_room(value, strlen(value)))
        return -1;
    *TOOL_OPTION_FIELD(cfg, offset, const char *) = value;
    return 0;
}
