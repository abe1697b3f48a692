#include "proto/json.h"

#include <string.h>

static int only_space(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return 0;
    return 1;
}

cJSON *proto_json_parse(const uint8_t *buf, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)buf, len, &end, 0);

    if (root == NULL || !only_space(end, (const char *)buf + len)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

char *proto_json_print(cJSON *obj, size_t *len)
{
    char *out = cJSON_PrintUnformatted(obj);

    cJSON_Delete(obj);
    *len = strlen(out);
    return out;
}

int proto_json_has_escaped_nul(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++) {
        if (buf[i] != '\\')
            continue;
        size_t run = 0;
        while (i + run < len && buf[i + run] == '\\')
            run++;
        i += run - 1;
        if (run % 2 == 1 && i + 6 <= len && memcmp(buf + i + 1, "u0000", 5) == 0)
            return 1;
    }
    return 0;
}
