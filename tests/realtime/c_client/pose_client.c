/*
 * pose_client: a minimal posestream subscriber in C, written from docs/protocol.md alone.
 *
 *   cc -O2 -Wall -o pose_client pose_client.c -lzmq
 *   ./pose_client tcp://127.0.0.1:5556 10 [timeout_ms]
 *
 * Subscribes to the "pose" topic, receives COUNT messages and prints one line for each:
 *
 *   seq=<seq> frame=<frame> persons=<P> xyz=<x>,<y>,<z>     (person 0's joint 0, metres)
 *   seq=<seq> frame=<frame> persons=0 xyz=none              (nobody in view)
 *
 * Checks on every message: exactly 3 frames, topic "pose", "v" is 1, "shape" is [P, J, 3], the
 * payload is exactly 4*P*J*3 bytes. Exits 0 after COUNT good messages; non-zero on any protocol
 * violation (5), a timeout with no message (4), a ZeroMQ error (3) or bad arguments (2).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Pointer to the value of the first "key": in a NUL-terminated JSON text, or NULL. */
static const char *json_value(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    for (const char *p = strstr(json, pattern); p; p = strstr(p + 1, pattern)) {
        const char *q = p + strlen(pattern);
        while (is_space(*q)) q++;
        if (*q == ':') {
            q++;
            while (is_space(*q)) q++;
            return q;
        }
    }
    return NULL;
}

/* Parse a JSON integer at *p (advancing *p); 0 on success. */
static int json_int(const char **p, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(*p, &end, 10);
    if (end == *p || errno != 0) return -1;
    *out = v;
    *p = end;
    return 0;
}

/* Skip whitespace, expect character c. */
static int expect(const char **p, char c) {
    while (is_space(**p)) (*p)++;
    if (**p != c) return -1;
    (*p)++;
    while (is_space(**p)) (*p)++;
    return 0;
}

/* "shape": [P, J, C] -> 0 on success. */
static int parse_shape(const char *json, long long shape[3]) {
    const char *p = json_value(json, "shape");
    if (!p || expect(&p, '[') != 0) return -1;
    for (int i = 0; i < 3; i++) {
        if (json_int(&p, &shape[i]) != 0) return -1;
        if (expect(&p, i < 2 ? ',' : ']') != 0) return -1;
    }
    return 0;
}

static int parse_int_key(const char *json, const char *key, long long *out) {
    const char *p = json_value(json, key);
    return p ? json_int(&p, out) : -1;
}

/* Little-endian float32 at byte offset off, whatever the host byte order. */
static float le_f32(const unsigned char *b, size_t off) {
    uint32_t u = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
                 (uint32_t)b[off + 3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int fail(int code, const char *what) {
    fprintf(stderr, "pose_client: %s\n", what);
    return code;
}

/* Receive one multipart message; returns frame count (parts beyond 3 are dropped), -1 on timeout. */
static int recv_message(void *sub, zmq_msg_t part[3]) {
    int n = 0, more = 1;
    zmq_msg_t extra;
    while (more) {
        zmq_msg_t *m = n < 3 ? &part[n] : &extra;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sub, 0) < 0) {
            int err = zmq_errno();
            zmq_msg_close(m);
            for (int i = 0; i < n && i < 3; i++) zmq_msg_close(&part[i]);
            errno = err;
            return -1;
        }
        more = zmq_msg_more(m);
        if (n >= 3) zmq_msg_close(m);
        n++;
    }
    return n;
}

static int check_and_print(zmq_msg_t part[3]) {
    if (zmq_msg_size(&part[0]) != 4 || memcmp(zmq_msg_data(&part[0]), "pose", 4) != 0)
        return fail(5, "topic frame is not \"pose\"");

    size_t hlen = zmq_msg_size(&part[1]);
    char *header = malloc(hlen + 1);
    if (!header) return fail(3, "out of memory");
    memcpy(header, zmq_msg_data(&part[1]), hlen);
    header[hlen] = '\0';

    long long v, seq, frame, shape[3];
    int rc = 0;
    if (parse_int_key(header, "v", &v) != 0 || v != 1)
        rc = fail(5, "header \"v\" is missing or not 1");
    else if (parse_shape(header, shape) != 0 || shape[0] < 0 || shape[1] <= 0 || shape[2] != 3)
        rc = fail(5, "header \"shape\" is missing or not [P, J, 3]");
    else if (parse_int_key(header, "seq", &seq) != 0 || parse_int_key(header, "frame", &frame) != 0)
        rc = fail(5, "header \"seq\" or \"frame\" is missing");
    free(header);
    if (rc != 0) return rc;

    size_t want = (size_t)4 * (size_t)shape[0] * (size_t)shape[1] * (size_t)shape[2];
    if (zmq_msg_size(&part[2]) != want) {
        fprintf(stderr, "pose_client: payload is %zu bytes, shape needs %zu\n", zmq_msg_size(&part[2]), want);
        return 5;
    }
    printf("seq=%lld frame=%lld persons=%lld ", seq, frame, shape[0]);
    if (shape[0] > 0) {
        const unsigned char *xyz = zmq_msg_data(&part[2]);
        printf("xyz=%.9g,%.9g,%.9g\n", le_f32(xyz, 0), le_f32(xyz, 4), le_f32(xyz, 8));
    } else {
        printf("xyz=none\n");
    }
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) return fail(2, "usage: pose_client ENDPOINT COUNT [TIMEOUT_MS]");
    const char *endpoint = argv[1];
    long count = strtol(argv[2], NULL, 10);
    int timeout_ms = argc == 4 ? atoi(argv[3]) : 5000;
    if (count <= 0) return fail(2, "COUNT must be a positive number");

    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "pose", 4);
    int rc = 0;
    if (zmq_connect(sub, endpoint) != 0) {
        fprintf(stderr, "pose_client: cannot connect to %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        rc = 3;
    }
    for (long i = 0; rc == 0 && i < count; i++) {
        zmq_msg_t part[3];
        int n = recv_message(sub, part);
        if (n < 0) {
            rc = errno == EAGAIN ? fail(4, "no message before the timeout") : fail(3, zmq_strerror(errno));
            break;
        }
        if (n != 3) {
            fprintf(stderr, "pose_client: message has %d frames, expected 3\n", n);
            rc = 5;
        } else {
            rc = check_and_print(part);
        }
        for (int k = 0; k < n && k < 3; k++) zmq_msg_close(&part[k]);
    }
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return rc;
}
