/*
 * The masking XOR of RFC 6455 section 5.3, shared by the two optional C
 * extensions (_mask.c and _frames.c), which each include it: one copy of
 * the loop, and each extension still builds on its own.
 *
 * dst = src XOR key, the 4-byte key repeated from key[0]; dst may be src.
 * Eight bytes at a time through memcpy (no alignment assumption; compilers
 * turn it into plain 64-bit loads and stores), then the tail byte by byte.
 * Include <Python.h> first (for Py_ssize_t).
 */
#ifndef WSKIT_XOR_H
#define WSKIT_XOR_H

#include <stdint.h>
#include <string.h>

static inline void
wskit_xor(const unsigned char *src, unsigned char *dst, Py_ssize_t size,
          const unsigned char key[4])
{
    Py_ssize_t i = 0;
    uint32_t key32;
    uint64_t key64, chunk;

    memcpy(&key32, key, 4);
    key64 = ((uint64_t)key32 << 32) | key32;
    for (; i + 8 <= size; i += 8) {
        memcpy(&chunk, src + i, 8);
        chunk ^= key64;
        memcpy(dst + i, &chunk, 8);
    }
    for (; i < size; i++) {
        dst[i] = src[i] ^ key[i & 3];
    }
}

#endif /* WSKIT_XOR_H */
