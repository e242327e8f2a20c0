/*
 * wskit._core._mask: the WebSocket masking XOR (RFC 6455 section 5.3) in C.
 *
 * Optional: built at install when a C compiler is there (setup.py marks the
 * extension optional), and wskit/_core/masking.py falls back to pure Python
 * when it is missing or when WSKIT_NO_EXTENSIONS=1 is set.
 *
 * apply_mask(data, mask) -> bytes
 *     data: any buffer (bytes, bytearray, memoryview); mask: a 4-byte buffer.
 *     Returns a new bytes object, data XOR the mask repeated, starting at
 *     mask[0]. Masking and unmasking are the same operation.
 *
 * The loop XORs 8 bytes at a time through memcpy (no alignment assumption;
 * compilers turn it into plain loads and stores and vectorize it), then the
 * tail byte by byte. The GIL is released for large inputs, since the result
 * is a fresh object nobody else can see yet.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Above this size the GIL is released while the loop runs. */
#define RELEASE_GIL_AT 65536

static void
xor_mask(const unsigned char *src, unsigned char *dst, Py_ssize_t size,
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

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    PyObject *result;
    unsigned char key[4];

    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "apply_mask() takes 2 arguments (data, mask), %zd given", nargs);
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_Format(PyExc_ValueError, "mask must be 4 bytes, got %zd", mask.len);
        result = NULL;
        goto done;
    }
    memcpy(key, mask.buf, 4);
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    if (data.len >= RELEASE_GIL_AT) {
        Py_BEGIN_ALLOW_THREADS
        xor_mask(data.buf, (unsigned char *)PyBytes_AS_STRING(result), data.len, key);
        Py_END_ALLOW_THREADS
    }
    else {
        xor_mask(data.buf, (unsigned char *)PyBytes_AS_STRING(result), data.len, key);
    }
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef mask_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes\n\n"
     "data XOR the 4-byte mask repeated (RFC 6455 section 5.3)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mask_module = {
    PyModuleDef_HEAD_INIT,
    "wskit._core._mask",
    "The WebSocket masking XOR in C (optional accelerator).",
    0,
    mask_methods,
};

PyMODINIT_FUNC
PyInit__mask(void)
{
    return PyModuleDef_Init(&mask_module);
}
