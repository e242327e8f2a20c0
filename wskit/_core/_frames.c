/*
 * wskit._core._frames: the small-message fast path of the frame decoder in C.
 *
 * Optional, like _mask.c: built at install when a C compiler is there, and
 * wskit/_core/smallframes.py uses its pure-Python take_small() when it is
 * missing or when WSKIT_NO_EXTENSIONS=1 is set. Both do exactly the same;
 * smallframes.py says what and why, tests/core/test_smallframes.py checks
 * the two against each other.
 *
 * take_small(text_type, binary_type, data, masked, limit) -> (messages, used)
 *     data: any buffer. Reads the whole final text/binary frames (FIN set,
 *     no RSV bit, 7- or 16-bit length, the mask bit as `masked` says, at
 *     most `limit` bytes (None: no limit) and at most 65,535) at the start
 *     of data, and stops at the first frame that is anything else or is
 *     cut by the end of data. Text must be valid UTF-8; invalid text stops
 *     the loop too (the caller's wsproto then refuses it with its reason).
 *     Returns the list of messages, each of text_type (a str subclass) or
 *     binary_type (a bytes subclass), and how many bytes they took.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_xor.h"

/* The longest payload read here: a 16-bit length. */
#define MAX_SMALL 65535
/* Text up to this size is unmasked on the stack before it is decoded. */
#define STACK_TEXT 2048

/* An instance of `type` (a str or bytes subclass) holding `value`, made
 * the way str.__new__(type, value) / bytes.__new__(type, value) make it.
 * Steals the reference to value. */
static PyObject *
as_subtype(PyTypeObject *base, PyTypeObject *type, PyObject *value)
{
    PyObject *args, *result;

    if (value == NULL) {
        return NULL;
    }
    args = PyTuple_New(1);
    if (args == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(args, 0, value); /* steals value */
    result = base->tp_new(type, args, NULL);
    Py_DECREF(args);
    return result;
}

/* The decoded text of one frame's payload; NULL with no error set when it
 * is not valid UTF-8 (the caller stops there). */
static PyObject *
decode_text(const unsigned char *payload, Py_ssize_t size, const unsigned char *key)
{
    unsigned char stack[STACK_TEXT];
    unsigned char *plain = stack;
    PyObject *text;

    if (key != NULL) {
        if (size > STACK_TEXT) {
            plain = PyMem_Malloc(size);
            if (plain == NULL) {
                return PyErr_NoMemory();
            }
        }
        wskit_xor(payload, plain, size, key);
        payload = plain;
    }
    text = PyUnicode_DecodeUTF8((const char *)payload, size, "strict");
    if (plain != stack) {
        PyMem_Free(plain);
    }
    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
    }
    return text;
}

static PyObject *
take_small(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyTypeObject *text_type, *binary_type;
    Py_buffer view;
    PyObject *messages = NULL, *message, *payload, *used, *result;
    const unsigned char *data, *key;
    Py_ssize_t end, pos = 0, start, size, stop, most = MAX_SMALL;
    int masked;

    (void)module;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "take_small() takes 5 arguments (text_type, binary_type, data, "
                     "masked, limit), %zd given", nargs);
        return NULL;
    }
    if (!PyType_Check(args[0]) || !PyType_IsSubtype((PyTypeObject *)args[0], &PyUnicode_Type)
        || !PyType_Check(args[1])
        || !PyType_IsSubtype((PyTypeObject *)args[1], &PyBytes_Type)) {
        PyErr_SetString(PyExc_TypeError,
                        "take_small(): text_type must be a str type, binary_type a bytes type");
        return NULL;
    }
    text_type = (PyTypeObject *)args[0];
    binary_type = (PyTypeObject *)args[1];
    masked = PyObject_IsTrue(args[3]);
    if (masked < 0) {
        return NULL;
    }
    if (args[4] != Py_None) {
        int overflow;
        long long limit = PyLong_AsLongLongAndOverflow(args[4], &overflow);
        if (limit == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (overflow < 0) {
            most = -1; /* every frame is over it: wsproto refuses them */
        }
        else if (overflow == 0 && limit < most) {
            most = limit < 0 ? -1 : (Py_ssize_t)limit;
        }
    }
    if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    data = view.buf;
    end = view.len;
    messages = PyList_New(0);
    if (messages == NULL) {
        goto fail;
    }
    while (end - pos >= 2) {
        unsigned char first = data[pos], second = data[pos + 1];
        if (first != 0x81 && first != 0x82) { /* FIN, no RSV, text or binary */
            break;
        }
        if (((second & 0x80) != 0) != masked) {
            break;
        }
        size = second & 0x7F;
        start = pos + 2;
        if (size == 126) {
            if (end - start < 2) {
                break;
            }
            size = ((Py_ssize_t)data[start] << 8) | data[start + 1];
            if (size < 126) { /* not the minimal encoding: wsproto refuses it */
                break;
            }
            start += 2;
        }
        else if (size == 127) {
            break;
        }
        if (size > most) {
            break;
        }
        key = NULL;
        if (masked) {
            key = data + start;
            start += 4;
        }
        stop = start + size;
        if (stop > end) {
            break;
        }
        if (first == 0x81) {
            payload = decode_text(data + start, size, key);
            if (payload == NULL) {
                if (PyErr_Occurred()) {
                    goto fail;
                }
                break; /* invalid UTF-8: wsproto fails the connection */
            }
            message = as_subtype(&PyUnicode_Type, text_type, payload);
        }
        else {
            payload = PyBytes_FromStringAndSize(NULL, size);
            if (payload == NULL) {
                goto fail;
            }
            if (key != NULL) {
                wskit_xor(data + start, (unsigned char *)PyBytes_AS_STRING(payload), size, key);
            }
            else {
                memcpy(PyBytes_AS_STRING(payload), data + start, size);
            }
            message = as_subtype(&PyBytes_Type, binary_type, payload);
        }
        if (message == NULL) {
            goto fail;
        }
        if (PyList_Append(messages, message) < 0) {
            Py_DECREF(message);
            goto fail;
        }
        Py_DECREF(message);
        pos = stop;
    }
    PyBuffer_Release(&view);
    used = PyLong_FromSsize_t(pos);
    if (used == NULL) {
        Py_DECREF(messages);
        return NULL;
    }
    result = PyTuple_New(2); /* not Py_BuildValue: its format parsing costs more */
    if (result == NULL) {
        Py_DECREF(messages);
        Py_DECREF(used);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, messages); /* steals both */
    PyTuple_SET_ITEM(result, 1, used);
    return result;

fail:
    Py_XDECREF(messages);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef frames_methods[] = {
    {"take_small", (PyCFunction)(void (*)(void))take_small, METH_FASTCALL,
     "take_small(text_type, binary_type, data, masked, limit) -> (messages, used)\n\n"
     "The whole small final text/binary frames at the start of data."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef frames_module = {
    PyModuleDef_HEAD_INIT,
    "wskit._core._frames",
    "The small-message fast path of the frame decoder in C (optional accelerator).",
    0,
    frames_methods,
};

PyMODINIT_FUNC
PyInit__frames(void)
{
    return PyModuleDef_Init(&frames_module);
}
