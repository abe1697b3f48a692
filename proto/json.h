/*
 * cJSON glue shared by the two codecs of proto/: proto.c (what clients send, what the server
 * encodes) and client.c (the tools' side). Internal to proto/: cJSON trees never leave it, so
 * the gateway and the tools never include this header.
 */
#ifndef CHAT_PROTO_JSON_H
#define CHAT_PROTO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* The JSON text buf[0..len) as a tree owned by the caller (free with cJSON_Delete), or NULL
 * when it is not one JSON value followed by nothing but white space. */
cJSON *proto_json_parse(const uint8_t *buf, size_t len);

/* obj as unformatted JSON text: takes ownership of obj and deletes it. Returns a
 * NUL-terminated text owned by the caller (free with proto_free) and sets *len to its length. */
char *proto_json_print(cJSON *obj, size_t *len);

/* 1 if the raw JSON buf[0..len) holds an escaped NUL (\u0000 after an even run of
 * backslashes), else 0. cJSON would cut the string there, so the codecs refuse such input
 * rather than change it silently. */
int proto_json_has_escaped_nul(const uint8_t *buf, size_t len);

#endif
