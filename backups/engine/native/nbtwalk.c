/*
 * The NBT structure walker of backups/engine/world.py (``_walk``), in C.
 *
 * Verification checks every chunk of every region file; after inflation the
 * Python walker was a third of that CPU time, and it held the GIL.  This is
 * the same loop, step for step, so a chunk gets the same verdict and the same
 * reason either way (tests/engine/test_world_native.py compares both on tens of
 * thousands of damaged chunks).  It is loaded with ctypes, which releases the
 * GIL for the call, and uses no allocation: the frames live on the stack and
 * are at most MAX_DEPTH, whatever the bytes say.
 *
 * Built by `make venv` (cc -O2 -shared -fPIC); if it is missing or stale the
 * engine logs once and walks in Python.
 */
#include <stdint.h>

#define MCSITE_NBT_VERSION 1 /* world.py checks it: a stale build is not used */
#define MAX_DEPTH 256        /* world._MAX_DEPTH */

/* Errors, returned negated: -(code * 256 + detail); detail is the tag for E_UNKNOWN_TAG. */
enum { E_TRUNCATED = 1, E_TOO_DEEP = 2, E_END_LIST = 3, E_UNKNOWN_TAG = 4, E_ARRAY_LENGTH = 5 };
enum { NESTED = 0, COMPOUNDS = 1, LISTS = 2 }; /* what a frame waits for, as in world.py */

typedef struct {
    int kind;
    int depth;    /* depth outside this container */
    int64_t left; /* list items left after the current one (COMPOUNDS) or to read (LISTS) */
} frame_t;

static const int64_t WIDTH[7] = {0, 1, 2, 4, 8, 4, 8};

#define FAIL(code, detail) return -((int64_t)(code) * 256 + (detail))

static inline int64_t array_width(unsigned tag) {
    return tag == 7 ? 1 : tag == 11 ? 4 : tag == 12 ? 8 : 0;
}

static inline int32_t be32(const uint8_t *p) {
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
}

int mcsite_nbt_version(void) { return MCSITE_NBT_VERSION; }

/* world._skip_items: past count > 0 items of a type that holds no further tags. */
static int64_t skip_items(const uint8_t *data, unsigned item, int64_t count, int64_t pos, int64_t size) {
    if (item < 7) {
        if (item == 0) FAIL(E_END_LIST, 0);
        return pos + count * WIDTH[item];
    }
    if (item == 8) {
        for (int64_t i = 0; i < count; i++) {
            if (pos + 1 >= size) FAIL(E_TRUNCATED, 0);
            pos += 2 + (((int64_t)data[pos] << 8) | data[pos + 1]);
            if (pos > size) FAIL(E_TRUNCATED, 0);
        }
        return pos;
    }
    int64_t width = array_width(item);
    if (!width) FAIL(E_UNKNOWN_TAG, item);
    for (int64_t i = 0; i < count; i++) {
        int64_t length = pos + 4 <= size ? be32(data + pos) : -1;
        if (length < 0) FAIL(E_ARRAY_LENGTH, 0);
        pos += 4 + length * width;
        if (pos > size) FAIL(E_TRUNCATED, 0);
    }
    return pos;
}

/*
 * The end of the root compound whose tags start at pos (>= 0), or a negative
 * error.  An end past size cannot be returned: the End tag read last is inside.
 */
int64_t mcsite_nbt_walk(const uint8_t *data, int64_t pos, int64_t size) {
    frame_t frames[MAX_DEPTH + 1];
    int nframes = 0, depth = 0;
    for (;;) {
        for (;;) { /* the tags of the compound we are in, up to its End or a list of lists */
            if (pos >= size) FAIL(E_TRUNCATED, 0);
            unsigned tag = data[pos];
            if (tag == 0) {
                pos += 1;
                if (!nframes) return pos;
                frame_t *frame = &frames[nframes - 1];
                if (frame->kind == COMPOUNDS && frame->left) {
                    frame->left -= 1; /* the list's next compound starts here */
                    continue;
                }
                int kind = frame->kind;
                nframes -= 1;
                depth = frame->depth;
                if (kind == COMPOUNDS && nframes && frames[nframes - 1].kind == LISTS) break;
                continue;
            }
            if (pos + 2 >= size) FAIL(E_TRUNCATED, 0);
            pos += 3 + (((int64_t)data[pos + 1] << 8) | data[pos + 2]);
            if (tag == 8) {
                if (pos + 1 >= size) FAIL(E_TRUNCATED, 0);
                pos += 2 + (((int64_t)data[pos] << 8) | data[pos + 1]);
            } else if (tag < 7) {
                pos += WIDTH[tag];
            } else if (tag == 10) {
                if (depth >= MAX_DEPTH) FAIL(E_TOO_DEEP, 0);
                frames[nframes++] = (frame_t){NESTED, depth, 0};
                depth += 1;
            } else if (tag == 9) {
                if (pos + 5 > size) FAIL(E_TRUNCATED, 0);
                unsigned item = data[pos];
                int64_t count = be32(data + pos + 1);
                pos += 5;
                if (count > 0) {
                    if (item == 10) {
                        if (depth >= MAX_DEPTH) FAIL(E_TOO_DEEP, 0);
                        frames[nframes++] = (frame_t){COMPOUNDS, depth, count - 1};
                        depth += 1;
                    } else if (item == 9) {
                        if (depth >= MAX_DEPTH) FAIL(E_TOO_DEEP, 0);
                        frames[nframes++] = (frame_t){LISTS, depth, count};
                        depth += 1;
                        break;
                    } else {
                        pos = skip_items(data, item, count, pos, size);
                        if (pos < 0) return pos;
                    }
                }
            } else {
                int64_t width = array_width(tag);
                if (!width) FAIL(E_UNKNOWN_TAG, tag);
                int64_t length = pos + 4 <= size ? be32(data + pos) : -1;
                if (length < 0) FAIL(E_ARRAY_LENGTH, 0);
                pos += 4 + length * width;
            }
            /* (no bounds check here: a position past the end fails the next read) */
        }
        for (;;) { /* the top frame is a list of lists: its next list */
            frame_t *frame = &frames[nframes - 1];
            if (frame->left == 0) {
                nframes -= 1;
                depth = frame->depth;
                if (nframes && frames[nframes - 1].kind == LISTS) continue;
                break; /* back in the compound holding the list */
            }
            frame->left -= 1;
            if (pos + 5 > size) FAIL(E_TRUNCATED, 0);
            unsigned item = data[pos];
            int64_t count = be32(data + pos + 1);
            pos += 5;
            if (count <= 0) continue;
            if (item == 10 || item == 9) {
                if (depth >= MAX_DEPTH) FAIL(E_TOO_DEEP, 0);
                frames[nframes++] = (frame_t){item == 10 ? COMPOUNDS : LISTS, depth, item == 10 ? count - 1 : count};
                depth += 1;
                if (item == 10) break; /* the first compound's tags */
            } else {
                pos = skip_items(data, item, count, pos, size);
                if (pos < 0) return pos;
                if (pos > size) FAIL(E_TRUNCATED, 0);
            }
        }
    }
}
