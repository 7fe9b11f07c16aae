/* pithead.stratum.server._fanout: write one line to many sockets, outside the GIL, on several threads.
 *
 * A new block means the same notify line to every miner. From Python each write costs the kernel's
 * send() (~6.5 us on loopback here) plus ~3 us of interpreter and transport bookkeeping; this module
 * does only the send()s, in C, with the GIL released, split over `threads` POSIX threads, so the kernel's
 * work for 10,000 miners is spread over cores even inside one process.
 *
 * send_all(fds: list[int], data: bytes, threads: int) -> list[tuple[int, int]]
 *   Sends `data` to each fd with MSG_DONTWAIT | MSG_NOSIGNAL (never blocks, never raises SIGPIPE) and
 *   returns (index, sent) for every fd that did not take the whole line: 0 <= sent < len(data) for a
 *   full socket buffer (EAGAIN) or a partial write, -errno for an error. The caller hands the rest to the
 *   connection's transport, which queues it or reports the error its own way.
 *
 * The caller guarantees each fd is an open, connected socket whose transport has nothing queued (so the
 * bytes keep their order) and is not closing (so the fd cannot have been reused).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

#define MAX_THREADS 16

typedef struct {
    const int *fds;
    Py_ssize_t *sent;
    Py_ssize_t begin, end;
    const char *data;
    Py_ssize_t len;
} Slice;

static void *send_slice(void *arg) {
    Slice *s = (Slice *)arg;
    for (Py_ssize_t i = s->begin; i < s->end; i++) {
        Py_ssize_t done = 0;
        while (done < s->len) {
            ssize_t n = send(s->fds[i], s->data + done, (size_t)(s->len - done), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0) {
                done += n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                done = -(Py_ssize_t)errno;
            break;
        }
        s->sent[i] = done;
    }
    return NULL;
}

static PyObject *send_all(PyObject *self, PyObject *args) {
    PyObject *fd_list;
    Py_buffer data;
    int threads;
    if (!PyArg_ParseTuple(args, "O!y*i", &PyList_Type, &fd_list, &data, &threads))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(fd_list);
    PyObject *result = NULL;
    int *fds = NULL;
    Py_ssize_t *sent = NULL;
    if (n == 0) {
        result = PyList_New(0);
        goto done;
    }
    fds = PyMem_RawMalloc(sizeof(int) * (size_t)n);
    sent = PyMem_RawMalloc(sizeof(Py_ssize_t) * (size_t)n);
    if (fds == NULL || sent == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long fd = PyLong_AsLong(PyList_GET_ITEM(fd_list, i));
        if (fd == -1 && PyErr_Occurred())
            goto done;
        if (fd < 0 || fd > 0x7fffffff) {
            PyErr_Format(PyExc_ValueError, "not a file descriptor: %ld", fd);
            goto done;
        }
        fds[i] = (int)fd;
    }
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > n)
        threads = (int)n;
    Slice slices[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int k = 0; k < threads; k++) {
        slices[k] = (Slice){fds, sent, n * k / threads, n * (k + 1) / threads, (const char *)data.buf, data.len};
    }
    Py_BEGIN_ALLOW_THREADS
    for (int k = 1; k < threads; k++)  /* slice 0 runs on this thread; a thread that cannot start runs here too */
        started[k] = pthread_create(&ids[k], NULL, send_slice, &slices[k]) == 0;
    send_slice(&slices[0]);
    for (int k = 1; k < threads; k++) {
        if (started[k])
            pthread_join(ids[k], NULL);
        else
            send_slice(&slices[k]);
    }
    Py_END_ALLOW_THREADS
    result = PyList_New(0);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (sent[i] == data.len)
            continue;
        PyObject *pair = Py_BuildValue("(nn)", i, sent[i]);
        if (pair == NULL || PyList_Append(result, pair) < 0) {
            Py_XDECREF(pair);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(pair);
    }
done:
    PyMem_RawFree(fds);
    PyMem_RawFree(sent);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"send_all", send_all, METH_VARARGS,
     "send_all(fds, data, threads) -> [(index, sent)] for the fds that did not take all of data"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fanout", "One line to many sockets, outside the GIL.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__fanout(void) { return PyModule_Create(&module); }
