/*
 * wskit._core._mask: the WebSocket masking XOR (RFC 6455 section 5.3) in C.
 *
 * Optional: built at install when a C compiler is there (setup.py marks the
 * extension optional), and wskit/_core/masking.py falls back to pure Python
 * when it is missing or when WSKIT_NO_EXTENSIONS=1 is set. The Python
 * fallbacks there do the same work, slower, with the same interface.
 *
 * apply_mask(data, mask) -> bytes
 *     data: any buffer (bytes, bytearray, memoryview); mask: a 4-byte buffer.
 *     Returns a new bytes object, data XOR the mask repeated, starting at
 *     mask[0]. Masking and unmasking are the same operation.
 *
 * mask_frame(header, data, mask) -> bytes
 *     One masked frame as a client sends it: header + mask + (data XOR mask),
 *     built in one allocation and one pass over the payload (no masked copy
 *     joined onto its header afterwards).
 *
 * MessageBuffer(cls, size, mask=None)
 *     The payload of one frame, unmasked (or, with mask None, copied) piece
 *     by piece as reads bring it, straight into the object that becomes the
 *     message: an instance of cls (bytes or a subclass that adds no fields,
 *     wskit's BinaryMessage). add(piece) returns the bytes still missing;
 *     finish() hands the object out once it is complete. Until then no
 *     Python code can see it, so filling it in place is safe (the same
 *     reasoning as PyBytes_FromStringAndSize(NULL, n)).
 *
 * The loop (_xor.h) XORs 8 bytes at a time through memcpy (no alignment assumption;
 * compilers turn it into plain loads and stores and vectorize it), then the
 * tail byte by byte. apply_mask and mask_frame release the GIL for large
 * inputs, since their result is a fresh object nobody else can see yet
 * (the source is a buffer we hold a view of).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "_xor.h"

/* Above this size the GIL is released while the loop runs. */
#define RELEASE_GIL_AT 65536

/* wskit_xor without the GIL when the input is large. */
static void
xor_mask_released(const unsigned char *src, unsigned char *dst, Py_ssize_t size,
                  const unsigned char key[4])
{
    if (size >= RELEASE_GIL_AT) {
        Py_BEGIN_ALLOW_THREADS
        wskit_xor(src, dst, size, key);
        Py_END_ALLOW_THREADS
    }
    else {
        wskit_xor(src, dst, size, key);
    }
}

/* Fill key from a 4-byte buffer object; -1 with an exception otherwise. */
static int
get_key(PyObject *obj, unsigned char key[4])
{
    Py_buffer mask;

    if (PyObject_GetBuffer(obj, &mask, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (mask.len != 4) {
        PyErr_Format(PyExc_ValueError, "mask must be 4 bytes, got %zd", mask.len);
        PyBuffer_Release(&mask);
        return -1;
    }
    memcpy(key, mask.buf, 4);
    PyBuffer_Release(&mask);
    return 0;
}

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
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
    if (get_key(args[1], key) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result != NULL) {
        xor_mask_released(data.buf, (unsigned char *)PyBytes_AS_STRING(result),
                          data.len, key);
    }
    PyBuffer_Release(&data);
    return result;
}

static PyObject *
mask_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer header, data;
    PyObject *result = NULL;
    unsigned char key[4];
    char *out;

    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "mask_frame() takes 3 arguments (header, data, mask), %zd given", nargs);
        return NULL;
    }
    if (get_key(args[2], key) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &header, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&header);
        return NULL;
    }
    if (data.len > PY_SSIZE_T_MAX - header.len - 4) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, header.len + 4 + data.len);
    if (result == NULL) {
        goto done;
    }
    out = PyBytes_AS_STRING(result);
    memcpy(out, header.buf, header.len);
    memcpy(out + header.len, key, 4);
    xor_mask_released(data.buf, (unsigned char *)out + header.len + 4, data.len, key);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&header);
    return result;
}

/* -- MessageBuffer ---------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *result;     /* the object being filled; NULL once handed out */
    Py_ssize_t size;      /* its length */
    Py_ssize_t filled;    /* bytes written so far */
    int masked;
    unsigned char key[4];
} MessageBuffer;

/* A bytes instance of type cls (bytes, or a subclass of the same layout)
 * of length size, its contents to be written by the caller.
 *
 * For a subclass this is what CPython's own bytes_subtype_new() does, minus
 * its copy and its zeroing: the object allocated for the type (with the GC
 * header when the type has one, as wskit's BinaryMessage does, and tracked
 * as tp_alloc would), the trailing NUL every bytes object has, the hash
 * marked not computed. Not zeroed on purpose: a peer that announces a large
 * frame and sends nothing more must not make us touch (and so commit) the
 * memory; pages become resident as the payload is written into them. */
static PyObject *
new_bytes_of(PyTypeObject *cls, Py_ssize_t size)
{
    PyObject *obj;

    if (cls == &PyBytes_Type) {
        return PyBytes_FromStringAndSize(NULL, size);
    }
    if (size > PY_SSIZE_T_MAX - cls->tp_basicsize - 8) {
        return PyErr_NoMemory();
    }
    if (PyType_IS_GC(cls)) {
        obj = (PyObject *)PyObject_GC_NewVar(PyVarObject, cls, size);
        if (obj != NULL) {
            PyObject_GC_Track(obj);
        }
    }
    else {
        obj = (PyObject *)PyObject_NewVar(PyVarObject, cls, size);
    }
    if (obj == NULL) {
        return NULL;
    }
    PyBytes_AS_STRING(obj)[size] = '\0';
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    ((PyBytesObject *)obj)->ob_shash = -1;
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif
    return obj;
}

static PyObject *
MessageBuffer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"cls", "size", "mask", NULL};
    PyTypeObject *cls;
    Py_ssize_t size;
    PyObject *mask = Py_None;
    MessageBuffer *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!n|O:MessageBuffer", kwlist,
                                     &PyType_Type, &cls, &size, &mask)) {
        return NULL;
    }
    if (!PyType_IsSubtype(cls, &PyBytes_Type)
        || cls->tp_basicsize != PyBytes_Type.tp_basicsize
        || cls->tp_itemsize != PyBytes_Type.tp_itemsize) {
        PyErr_Format(PyExc_TypeError,
                     "MessageBuffer() needs bytes or a subclass adding no fields, not %s",
                     cls->tp_name);
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "MessageBuffer() size must be >= 0");
        return NULL;
    }
    self = (MessageBuffer *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (mask != Py_None) {
        if (get_key(mask, self->key) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        self->masked = 1;
    }
    self->result = new_bytes_of(cls, size);
    if (self->result == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->size = size;
    return (PyObject *)self;
}

static void
MessageBuffer_dealloc(MessageBuffer *self)
{
    Py_XDECREF(self->result);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
MessageBuffer_add(MessageBuffer *self, PyObject *piece)
{
    Py_buffer data;
    unsigned char *dst;
    unsigned char key[4];
    int turn, i;

    if (self->result == NULL) {
        PyErr_SetString(PyExc_ValueError, "MessageBuffer: already finished");
        return NULL;
    }
    if (PyObject_GetBuffer(piece, &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (data.len > self->size - self->filled) {
        PyErr_Format(PyExc_ValueError, "MessageBuffer: %zd bytes added, %zd missing",
                     data.len, self->size - self->filled);
        PyBuffer_Release(&data);
        return NULL;
    }
    dst = (unsigned char *)PyBytes_AS_STRING(self->result) + self->filled;
    if (self->masked) {
        /* The key continues where the previous piece left it. The GIL is
         * kept: the object being filled is shared with no one, but this
         * MessageBuffer could be (another thread's add() on it). */
        turn = (int)(self->filled & 3);
        for (i = 0; i < 4; i++) {
            key[i] = self->key[(turn + i) & 3];
        }
        wskit_xor(data.buf, dst, data.len, key);
    }
    else {
        memcpy(dst, data.buf, data.len);
    }
    self->filled += data.len;
    PyBuffer_Release(&data);
    return PyLong_FromSsize_t(self->size - self->filled);
}

static PyObject *
MessageBuffer_read_from(MessageBuffer *self, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, turn, i;
    Py_ssize_t most, got;
    unsigned char *dst;
    unsigned char key[4];

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "read_from() takes 2 arguments (fd, most), %zd given", nargs);
        return NULL;
    }
    fd = PyObject_AsFileDescriptor(args[0]);
    if (fd < 0) {
        return NULL;
    }
    most = PyLong_AsSsize_t(args[1]);
    if (most == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (self->result == NULL) {
        PyErr_SetString(PyExc_ValueError, "MessageBuffer: already finished");
        return NULL;
    }
    if (most > self->size - self->filled) {
        most = self->size - self->filled;
    }
    if (most <= 0) {
        return PyLong_FromLong(0);
    }
    dst = (unsigned char *)PyBytes_AS_STRING(self->result) + self->filled;
    for (;;) {
        got = read(fd, dst, (size_t)most);
        if (got >= 0) {
            break;
        }
        if (errno != EINTR) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
    }
    if (self->masked && got > 0) {
        turn = (int)(self->filled & 3);
        for (i = 0; i < 4; i++) {
            key[i] = self->key[(turn + i) & 3];
        }
        wskit_xor(dst, dst, got, key);
    }
    self->filled += got;
    return PyLong_FromSsize_t(got);
}

static PyObject *
MessageBuffer_finish(MessageBuffer *self, PyObject *unused)
{
    PyObject *result = self->result;

    (void)unused;
    if (result == NULL) {
        PyErr_SetString(PyExc_ValueError, "MessageBuffer: already finished");
        return NULL;
    }
    if (self->filled != self->size) {
        PyErr_Format(PyExc_ValueError, "MessageBuffer: %zd bytes still missing",
                     self->size - self->filled);
        return NULL;
    }
    self->result = NULL;
    return result;
}

static PyObject *
MessageBuffer_get_missing(MessageBuffer *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->size - self->filled);
}

static PyMethodDef MessageBuffer_methods[] = {
    {"add", (PyCFunction)MessageBuffer_add, METH_O,
     "add(piece) -> int\n\nUnmask (or copy) the next piece of the payload into "
     "the message; returns the bytes still missing."},
    {"read_from", (PyCFunction)(void (*)(void))MessageBuffer_read_from, METH_FASTCALL,
     "read_from(fd, most) -> int\n\nRead up to most bytes of the payload (no more "
     "than are missing) from the file descriptor straight into the message, and "
     "unmask them there; returns how many (0: end of stream)."},
    {"finish", (PyCFunction)MessageBuffer_finish, METH_NOARGS,
     "finish() -> the complete message object (once)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef MessageBuffer_getset[] = {
    {"missing", (getter)MessageBuffer_get_missing, NULL,
     "Bytes of the payload not added yet.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject MessageBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wskit._core._mask.MessageBuffer",
    .tp_basicsize = sizeof(MessageBuffer),
    .tp_dealloc = (destructor)MessageBuffer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "MessageBuffer(cls, size, mask=None): one frame's payload, "
              "unmasked piece by piece into the object that becomes the message.",
    .tp_methods = MessageBuffer_methods,
    .tp_getset = MessageBuffer_getset,
    .tp_new = MessageBuffer_new,
};

/* -- the module ------------------------------------------------------- */

static PyMethodDef mask_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes\n\n"
     "data XOR the 4-byte mask repeated (RFC 6455 section 5.3)."},
    {"mask_frame", (PyCFunction)(void (*)(void))mask_frame, METH_FASTCALL,
     "mask_frame(header, data, mask) -> bytes\n\n"
     "header + mask + (data XOR mask): one masked frame, in one pass."},
    {NULL, NULL, 0, NULL},
};

static int
mask_exec(PyObject *module)
{
    if (PyType_Ready(&MessageBufferType) < 0) {
        return -1;
    }
    Py_INCREF(&MessageBufferType);
    if (PyModule_AddObject(module, "MessageBuffer", (PyObject *)&MessageBufferType) < 0) {
        Py_DECREF(&MessageBufferType);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot mask_slots[] = {
    {Py_mod_exec, mask_exec},
    {0, NULL},
};

static struct PyModuleDef mask_module = {
    PyModuleDef_HEAD_INIT,
    "wskit._core._mask",
    "The WebSocket masking XOR in C (optional accelerator).",
    0,
    mask_methods,
    mask_slots,
};

PyMODINIT_FUNC
PyInit__mask(void)
{
    return PyModuleDef_Init(&mask_module);
}
