/* dataplatform_avro: the clean-topic Avro codec's hot loops in C.
 *
 * `dataplatform.compile.avro_codec` compiles each event schema into a "program" (nested
 * tuples describing the record: see `_program` there) and, when this module is importable,
 * runs it here instead of in generated Python: the anonymizer encodes every clean event and
 * the local warehouse sink decodes every one, and per-field Python bytecode was ~15% of each
 * process's CPU. The semantics are the generated Python's, value for value and byte for
 * byte (the tests run both backends against fastavro and against each other):
 *
 *   encode(program, row) -> bytes        raises failed_cls(at, cause) for a row that does
 *                                        not fit (`at` indexes the codec's path messages)
 *   decode(program, data) -> dict        aware-UTC datetimes, dates, nested dicts/lists
 *   decode_values(program, data) -> tuple  top-level values; TIMESTAMP/DATE as ints
 *
 * `configure(...)` hands over what the Python module owns (its exception classes, the
 * epoch, the timestamp/date constructors) once, at import.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>

enum {
    K_STRING = 1, K_BYTES, K_LONG, K_DOUBLE, K_BOOLEAN, K_TIMESTAMP, K_DATE, K_RECORD, K_ARRAY, K_UNION
};

typedef struct Node {
    int kind;
    Py_ssize_t at;          /* index of this column's "expected ..." message, -1 for none */
    PyObject *name;         /* record fields: the interned field name */
    Py_ssize_t missing_at;  /* record fields: index of "column ... is missing" */
    struct Node *inner;     /* array items, union's non-null branch */
    struct Node *fields;    /* record fields */
    Py_ssize_t nfields;
} Node;

static PyObject *Mapping = NULL;       /* collections.abc.Mapping */
static PyObject *Epoch = NULL;         /* datetime(1970, 1, 1, tzinfo=UTC) */
static PyObject *DecodeError = NULL;   /* AvroDecodeError */
static PyObject *FailedCls = NULL;     /* avro_codec._Failed(at, cause) */
static PyObject *TimestampFn = NULL;   /* int micros -> aware datetime */
static PyObject *DateFn = NULL;        /* int days -> date */
static const long long EPOCH_ORDINAL = 719163; /* date(1970, 1, 1).toordinal() */

#define CAPSULE_NAME "dataplatform_avro.program"

/* ------------------------------------------------------------------ program */

static void node_clear(Node *n) {
    if (n == NULL) return;
    Py_CLEAR(n->name);
    if (n->inner) { node_clear(n->inner); PyMem_Free(n->inner); n->inner = NULL; }
    if (n->fields) {
        for (Py_ssize_t i = 0; i < n->nfields; i++) node_clear(&n->fields[i]);
        PyMem_Free(n->fields);
        n->fields = NULL;
    }
}

static int node_parse(PyObject *spec, Node *n, int depth) {
    memset(n, 0, sizeof(*n));
    n->at = -1;
    n->missing_at = -1;
    if (depth > 64) {
        PyErr_SetString(PyExc_ValueError, "Avro program nested too deeply");
        return -1;
    }
    int kind;
    Py_ssize_t at;
    PyObject *arg;
    if (!PyTuple_Check(spec) || !PyArg_ParseTuple(spec, "inO", &kind, &at, &arg)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "an Avro program node is a (kind, at, arg) tuple");
        return -1;
    }
    n->kind = kind;
    n->at = at;
    switch (kind) {
    case K_STRING: case K_BYTES: case K_LONG: case K_DOUBLE: case K_BOOLEAN: case K_TIMESTAMP: case K_DATE:
        return 0;
    case K_ARRAY: case K_UNION:
        n->inner = PyMem_Calloc(1, sizeof(Node));
        if (n->inner == NULL) { PyErr_NoMemory(); return -1; }
        return node_parse(arg, n->inner, depth + 1);
    case K_RECORD: {
        if (!PyTuple_Check(arg)) { PyErr_SetString(PyExc_TypeError, "record fields must be a tuple"); return -1; }
        Py_ssize_t count = PyTuple_GET_SIZE(arg);
        n->fields = PyMem_Calloc(count ? count : 1, sizeof(Node));
        if (n->fields == NULL) { PyErr_NoMemory(); return -1; }
        n->nfields = count;
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *name, *type;
            Py_ssize_t missing_at;
            PyObject *field = PyTuple_GET_ITEM(arg, i);
            if (!PyTuple_Check(field) || !PyArg_ParseTuple(field, "UnO", &name, &missing_at, &type)) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a record field is a (name, missing_at, node) tuple");
                return -1;
            }
            if (node_parse(type, &n->fields[i], depth + 1) < 0) return -1;
            Py_INCREF(name);
            PyUnicode_InternInPlace(&name);
            n->fields[i].name = name;
            n->fields[i].missing_at = missing_at;
        }
        return 0;
    }
    default:
        PyErr_Format(PyExc_ValueError, "unknown Avro program kind %d", kind);
        return -1;
    }
}

static void program_destroy(PyObject *capsule) {
    Node *root = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (root) { node_clear(root); PyMem_Free(root); }
}

static PyObject *compile_program(PyObject *self, PyObject *spec) {
    Node *root = PyMem_Calloc(1, sizeof(Node));
    if (root == NULL) return PyErr_NoMemory();
    if (node_parse(spec, root, 0) < 0) { node_clear(root); PyMem_Free(root); return NULL; }
    if (root->kind != K_RECORD) {
        node_clear(root); PyMem_Free(root);
        PyErr_SetString(PyExc_ValueError, "an Avro program's root is a record");
        return NULL;
    }
    PyObject *capsule = PyCapsule_New(root, CAPSULE_NAME, program_destroy);
    if (capsule == NULL) { node_clear(root); PyMem_Free(root); }
    return capsule;
}

static Node *program_root(PyObject *capsule) {
    return PyCapsule_GetPointer(capsule, CAPSULE_NAME);  /* sets an error when not a program */
}

/* ------------------------------------------------------------------ encode */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
    char local[1024];
} Buf;

static int buf_grow(Buf *b, Py_ssize_t need) {
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + need) cap *= 2;
    char *p;
    if (b->p == b->local) {
        p = PyMem_Malloc(cap);
        if (p) memcpy(p, b->local, b->len);
    } else {
        p = PyMem_Realloc(b->p, cap);
    }
    if (p == NULL) { PyErr_NoMemory(); return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *data, Py_ssize_t n) {
    if (b->len + n > b->cap && buf_grow(b, n) < 0) return -1;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static inline int buf_byte(Buf *b, unsigned char c) {
    if (b->len + 1 > b->cap && buf_grow(b, 1) < 0) return -1;
    b->p[b->len++] = (char)c;
    return 0;
}

static inline int buf_long(Buf *b, long long value) {
    uint64_t n = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    unsigned char tmp[10];
    int i = 0;
    while (n >= 0x80) { tmp[i++] = (unsigned char)((n & 0x7F) | 0x80); n >>= 7; }
    tmp[i++] = (unsigned char)n;
    return buf_put(b, tmp, i);
}

static int encode_node(Node *n, PyObject *v, Buf *b, Py_ssize_t *at);

static int encode_fields(Node *n, PyObject *record, Buf *b, Py_ssize_t *at) {
    int exact = PyDict_CheckExact(record);
    for (Py_ssize_t i = 0; i < n->nfields; i++) {
        Node *f = &n->fields[i];
        *at = f->missing_at;
        PyObject *value;
        if (exact) {
            value = PyDict_GetItemWithError(record, f->name);
            if (value == NULL) {
                if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, f->name);
                return -1;
            }
            Py_INCREF(value);
        } else {
            value = PyObject_GetItem(record, f->name);
            if (value == NULL) return -1;
        }
        int rc = encode_node(f, value, b, at);
        Py_DECREF(value);
        if (rc < 0) return -1;
    }
    return 0;
}

static int encode_timestamp(PyObject *v, Buf *b) {
    PyObject *delta = PyNumber_Subtract(v, Epoch);  /* TypeError for a naive datetime */
    if (delta == NULL) return -1;
    if (!PyDelta_Check(delta)) {
        Py_DECREF(delta);
        PyErr_SetString(PyExc_TypeError, "not a datetime");
        return -1;
    }
    long long micros = ((long long)PyDateTime_DELTA_GET_DAYS(delta) * 86400LL
                        + PyDateTime_DELTA_GET_SECONDS(delta)) * 1000000LL
                       + PyDateTime_DELTA_GET_MICROSECONDS(delta);
    Py_DECREF(delta);
    return buf_long(b, micros);
}

static int encode_date(PyObject *v, Buf *b) {
    if (PyDateTime_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "a datetime where a DATE is expected");
        return -1;
    }
    PyObject *ordinal = PyObject_CallMethod(v, "toordinal", NULL);
    if (ordinal == NULL) return -1;
    long long days = PyLong_AsLongLong(ordinal);
    Py_DECREF(ordinal);
    if (days == -1 && PyErr_Occurred()) return -1;
    return buf_long(b, days - EPOCH_ORDINAL);
}

static int encode_node(Node *n, PyObject *v, Buf *b, Py_ssize_t *at) {
    if (n->kind == K_UNION) {
        if (v == Py_None) return buf_byte(b, 0);
        if (buf_byte(b, 2) < 0) return -1;
        return encode_node(n->inner, v, b, at);
    }
    *at = n->at;
    switch (n->kind) {
    case K_STRING: {
        if (!PyUnicode_Check(v)) { PyErr_SetString(PyExc_AttributeError, "not a str"); return -1; }
        Py_ssize_t size;
        const char *utf8 = PyUnicode_AsUTF8AndSize(v, &size);  /* UnicodeEncodeError: lone surrogates */
        if (utf8 == NULL) return -1;
        if (buf_long(b, size) < 0) return -1;
        return buf_put(b, utf8, size);
    }
    case K_BYTES:
        if (!PyBytes_CheckExact(v)) { PyErr_SetNone(PyExc_TypeError); return -1; }
        if (buf_long(b, PyBytes_GET_SIZE(v)) < 0) return -1;
        return buf_put(b, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
    case K_LONG: {
        if (!PyLong_CheckExact(v)) { PyErr_SetNone(PyExc_TypeError); return -1; }
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) { PyErr_SetString(PyExc_OverflowError, "value outside the Avro long (int64) range"); return -1; }
        if (value == -1 && PyErr_Occurred()) return -1;
        return buf_long(b, value);
    }
    case K_DOUBLE: {
        if (PyBool_Check(v)) { PyErr_SetNone(PyExc_TypeError); return -1; }
        double d = PyFloat_AsDouble(v);  /* float, int, __float__/__index__; TypeError otherwise */
        if (d == -1.0 && PyErr_Occurred()) return -1;
        char raw[8];
        if (PyFloat_Pack8(d, raw, 1) < 0) return -1;
        return buf_put(b, raw, 8);
    }
    case K_BOOLEAN:
        if (v == Py_True) return buf_byte(b, 1);
        if (v == Py_False) return buf_byte(b, 0);
        PyErr_SetNone(PyExc_TypeError);
        return -1;
    case K_TIMESTAMP:
        return encode_timestamp(v, b);
    case K_DATE:
        return encode_date(v, b);
    case K_RECORD:
        if (!PyDict_CheckExact(v)) { PyErr_SetNone(PyExc_TypeError); return -1; }
        return encode_fields(n, v, b, at);
    case K_ARRAY: {
        if (!PyList_CheckExact(v)) { PyErr_SetNone(PyExc_TypeError); return -1; }
        Py_ssize_t count = PyList_GET_SIZE(v);
        if (count) {
            if (buf_long(b, count) < 0) return -1;
            for (Py_ssize_t i = 0; i < count; i++) {
                if (i >= PyList_GET_SIZE(v)) {  /* shrunk while encoding: the count is wrong */
                    PyErr_SetString(PyExc_IndexError, "list changed size while encoding");
                    return -1;
                }
                PyObject *item = PyList_GET_ITEM(v, i);
                Py_INCREF(item);
                int rc = encode_node(n->inner, item, b, at);
                Py_DECREF(item);
                if (rc < 0) return -1;
            }
        }
        return buf_byte(b, 0);
    }
    }
    PyErr_SetString(PyExc_SystemError, "bad Avro program node");
    return -1;
}

static int is_row_error(void) {
    return PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_AttributeError)
        || PyErr_ExceptionMatches(PyExc_KeyError) || PyErr_ExceptionMatches(PyExc_ValueError)
        || PyErr_ExceptionMatches(PyExc_OverflowError) || PyErr_ExceptionMatches(PyExc_IndexError);
}

static PyObject *encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "encode(program, row)"); return NULL; }
    Node *root = program_root(args[0]);
    if (root == NULL) return NULL;
    PyObject *row = args[1];
    Buf b;
    b.p = b.local;
    b.len = 0;
    b.cap = sizeof(b.local);
    Py_ssize_t at = -1;
    int rc;
    if (!PyDict_CheckExact(row)) {
        int is_mapping = PyObject_IsInstance(row, Mapping);
        if (is_mapping < 0) return NULL;
        if (!is_mapping) { PyErr_SetNone(PyExc_TypeError); rc = -1; goto done; }
    }
    rc = encode_fields(root, row, &b, &at);
done:
    if (rc < 0) {
        if (b.p != b.local) PyMem_Free(b.p);
        if (!is_row_error()) return NULL;
        PyObject *type, *cause, *traceback;
        PyErr_Fetch(&type, &cause, &traceback);
        PyErr_NormalizeException(&type, &cause, &traceback);
        PyObject *failed = PyObject_CallFunction(FailedCls, "nO", at, cause ? cause : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(cause);
        Py_XDECREF(traceback);
        if (failed != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(failed), failed);
            Py_DECREF(failed);
        }
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(b.p, b.len);
    if (b.p != b.local) PyMem_Free(b.p);
    return out;
}

/* ------------------------------------------------------------------ decode */

typedef struct {
    const unsigned char *p;
    Py_ssize_t pos, size;
} Reader;

static int read_long(Reader *r, long long *out) {
    uint64_t n = 0;
    int shift = 0;
    for (;;) {
        if (r->pos >= r->size) { PyErr_SetString(PyExc_IndexError, "index out of range"); return -1; }
        unsigned char c = r->p[r->pos++];
        if (shift == 63 && (c & 0x7E)) {
            PyErr_SetString(DecodeError, "varint overflows a 64-bit long");
            return -1;
        }
        n |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) break;
        shift += 7;
        if (shift > 63) { PyErr_SetString(DecodeError, "varint longer than 10 bytes"); return -1; }
    }
    *out = (long long)(n >> 1) ^ -(long long)(n & 1);
    return 0;
}

static PyObject *decode_node(Node *n, Reader *r, int raw_times);

static PyObject *decode_record(Node *n, Reader *r) {
    PyObject *record = PyDict_New();
    if (record == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n->nfields; i++) {
        PyObject *value = decode_node(&n->fields[i], r, 0);
        if (value == NULL || PyDict_SetItem(record, n->fields[i].name, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(record);
            return NULL;
        }
        Py_DECREF(value);
    }
    return record;
}

static PyObject *decode_node(Node *n, Reader *r, int raw_times) {
    long long value;
    switch (n->kind) {
    case K_UNION: {
        if (r->pos >= r->size) { PyErr_SetString(PyExc_IndexError, "index out of range"); return NULL; }
        unsigned char branch = r->p[r->pos++];
        if (branch == 0) Py_RETURN_NONE;
        if (branch == 2) return decode_node(n->inner, r, raw_times);
        PyErr_SetString(DecodeError, "union branch index out of range");
        return NULL;
    }
    case K_STRING: case K_BYTES: {
        if (read_long(r, &value) < 0) return NULL;
        if (value < 0 || value > r->size - r->pos) { PyErr_SetString(DecodeError, "length out of range"); return NULL; }
        const char *start = (const char *)r->p + r->pos;
        r->pos += value;
        if (n->kind == K_STRING) return PyUnicode_DecodeUTF8(start, value, NULL);
        return PyBytes_FromStringAndSize(start, value);
    }
    case K_LONG:
        if (read_long(r, &value) < 0) return NULL;
        return PyLong_FromLongLong(value);
    case K_DOUBLE: {
        if (r->size - r->pos < 8) { PyErr_SetString(PyExc_IndexError, "a double needs 8 bytes"); return NULL; }
        double d = PyFloat_Unpack8((const char *)r->p + r->pos, 1);
        r->pos += 8;
        if (d == -1.0 && PyErr_Occurred()) return NULL;
        return PyFloat_FromDouble(d);
    }
    case K_BOOLEAN: {
        if (r->pos >= r->size) { PyErr_SetString(PyExc_IndexError, "index out of range"); return NULL; }
        unsigned char flag = r->p[r->pos++];
        if (flag > 1) { PyErr_SetString(DecodeError, "boolean byte is not 0 or 1"); return NULL; }
        return PyBool_FromLong(flag);
    }
    case K_TIMESTAMP: case K_DATE: {
        if (read_long(r, &value) < 0) return NULL;
        PyObject *number = PyLong_FromLongLong(value);
        if (number == NULL || raw_times) return number;
        PyObject *out = PyObject_CallOneArg(n->kind == K_TIMESTAMP ? TimestampFn : DateFn, number);
        Py_DECREF(number);
        return out;
    }
    case K_RECORD:
        return decode_record(n, r);
    case K_ARRAY: {
        PyObject *list = PyList_New(0);
        if (list == NULL) return NULL;
        long long count;
        if (read_long(r, &count) < 0) goto fail;
        while (count) {
            if (count < 0) {  /* a negative count is followed by the block's size in bytes */
                long long ignored;
                count = -count;
                if (read_long(r, &ignored) < 0) goto fail;
            }
            for (long long i = 0; i < count; i++) {
                PyObject *item = decode_node(n->inner, r, 0);
                if (item == NULL) goto fail;
                int rc = PyList_Append(list, item);
                Py_DECREF(item);
                if (rc < 0) goto fail;
            }
            if (read_long(r, &count) < 0) goto fail;
        }
        return list;
    fail:
        Py_DECREF(list);
        return NULL;
    }
    }
    PyErr_SetString(PyExc_SystemError, "bad Avro program node");
    return NULL;
}

static int reader_of(PyObject *data, Py_buffer *view, Reader *r) {
    if (PyObject_GetBuffer(data, view, PyBUF_SIMPLE) < 0) return -1;
    r->p = view->buf;
    r->pos = 0;
    r->size = view->len;
    return 0;
}

static PyObject *finish(PyObject *out, Reader *r, Py_buffer *view) {
    if (out != NULL && r->pos != r->size) {
        Py_DECREF(out);
        out = NULL;
        PyErr_Format(DecodeError, "%zd trailing byte(s) after the record", r->size - r->pos);
    }
    PyBuffer_Release(view);
    return out;
}

static PyObject *decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "decode(program, data)"); return NULL; }
    Node *root = program_root(args[0]);
    if (root == NULL) return NULL;
    Py_buffer view;
    Reader r;
    if (reader_of(args[1], &view, &r) < 0) return NULL;
    return finish(decode_record(root, &r), &r, &view);
}

static PyObject *decode_values(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "decode_values(program, data)"); return NULL; }
    Node *root = program_root(args[0]);
    if (root == NULL) return NULL;
    Py_buffer view;
    Reader r;
    if (reader_of(args[1], &view, &r) < 0) return NULL;
    PyObject *values = PyTuple_New(root->nfields);
    if (values != NULL) {
        for (Py_ssize_t i = 0; i < root->nfields; i++) {
            PyObject *value = decode_node(&root->fields[i], &r, 1);
            if (value == NULL) { Py_CLEAR(values); break; }
            PyTuple_SET_ITEM(values, i, value);
        }
    }
    return finish(values, &r, &view);
}

/* ------------------------------------------------------------------ module */

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *mapping, *epoch, *decode_error, *failed, *timestamp_fn, *date_fn;
    if (!PyArg_ParseTuple(args, "OOOOOO", &mapping, &epoch, &decode_error, &failed, &timestamp_fn, &date_fn))
        return NULL;
    if (!PyDateTime_Check(epoch)) { PyErr_SetString(PyExc_TypeError, "epoch must be a datetime"); return NULL; }
    Py_INCREF(mapping); Py_XSETREF(Mapping, mapping);
    Py_INCREF(epoch); Py_XSETREF(Epoch, epoch);
    Py_INCREF(decode_error); Py_XSETREF(DecodeError, decode_error);
    Py_INCREF(failed); Py_XSETREF(FailedCls, failed);
    Py_INCREF(timestamp_fn); Py_XSETREF(TimestampFn, timestamp_fn);
    Py_INCREF(date_fn); Py_XSETREF(DateFn, date_fn);
    Py_RETURN_NONE;
}

static PyObject *not_configured(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyErr_SetString(PyExc_RuntimeError, "dataplatform_avro.configure(...) was not called");
    return NULL;
}

static PyObject *dispatch_encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return FailedCls ? encode(self, args, nargs) : not_configured(self, args, nargs);
}

static PyObject *dispatch_decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return DecodeError ? decode(self, args, nargs) : not_configured(self, args, nargs);
}

static PyObject *dispatch_decode_values(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return DecodeError ? decode_values(self, args, nargs) : not_configured(self, args, nargs);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Mapping, epoch, AvroDecodeError, Failed, timestamp_fn, date_fn): once, at import"},
    {"compile", compile_program, METH_O, "compile(spec) -> program: a spec of nested (kind, at, arg) tuples"},
    {"encode", (PyCFunction)(void (*)(void))dispatch_encode, METH_FASTCALL, "encode(program, row) -> bytes"},
    {"decode", (PyCFunction)(void (*)(void))dispatch_decode, METH_FASTCALL, "decode(program, data) -> dict"},
    {"decode_values", (PyCFunction)(void (*)(void))dispatch_decode_values, METH_FASTCALL,
     "decode_values(program, data) -> tuple of top-level values, times as ints"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dataplatform_avro",
    "The clean-topic Avro codec's hot loops (see dataplatform.compile.avro_codec).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_dataplatform_avro(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "STRING", K_STRING) < 0 || PyModule_AddIntConstant(m, "BYTES", K_BYTES) < 0
        || PyModule_AddIntConstant(m, "LONG", K_LONG) < 0 || PyModule_AddIntConstant(m, "DOUBLE", K_DOUBLE) < 0
        || PyModule_AddIntConstant(m, "BOOLEAN", K_BOOLEAN) < 0
        || PyModule_AddIntConstant(m, "TIMESTAMP", K_TIMESTAMP) < 0
        || PyModule_AddIntConstant(m, "DATE", K_DATE) < 0 || PyModule_AddIntConstant(m, "RECORD", K_RECORD) < 0
        || PyModule_AddIntConstant(m, "ARRAY", K_ARRAY) < 0 || PyModule_AddIntConstant(m, "UNION", K_UNION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
