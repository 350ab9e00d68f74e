/* The per-file loops of a batch write (mybb_sync.atomic), run without the interpreter lock.
 *
 * Written in Python, each file of a batch costs four or five system calls, and
 * each call gives the interpreter lock up and waits to get it back. On two
 * cores, while the event loop parses rows and plans the next batch, that wait
 * is most of the writer's time (issue 26: 6,800 context switches per 10,000
 * files; the export took the sum of the two threads' time, not the larger).
 * Here the whole batch runs with the lock released: the writer's system calls
 * overlap the Python around them. Each temp's mtime is set a racy window before
 * its write, so that the stat recorded at its rename is trusted at once (see
 * atomic.py). The decisions (which files, which names,
 * modes and groups, what counts as a conflict) stay in atomic.py; these two
 * functions only carry out one batch's system calls and report each file's
 * outcome.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* A system call again while a signal interrupted it (Python's handlers do not ask the kernel
 * to restart calls; PEP 475 retries them in Python, and so must C). Not for close(). */
#define RETRY(call)                                                                                                    \
    ({                                                                                                                 \
        long _r;                                                                                                       \
        do                                                                                                             \
            _r = (long)(call);                                                                                         \
        while (_r < 0 && errno == EINTR);                                                                              \
        _r;                                                                                                            \
    })

typedef struct {
    int dfd;
    PyObject *name; /* bytes, owned */
    const char *data;
    Py_ssize_t size;
    int mode;
    long gid; /* -1: leave the group the kernel gives */
    int err;
    struct stat st;
} temp_t;

static int as_int_at(PyObject *list, Py_ssize_t i, long *out) {
    *out = PyLong_AsLong(PyList_GET_ITEM(list, i));
    return !(*out == -1 && PyErr_Occurred());
}

static int same_length(PyObject *const *lists, int count, Py_ssize_t *n) {
    for (int k = 0; k < count; k++) {
        if (!PyList_Check(lists[k])) {
            PyErr_SetString(PyExc_TypeError, "expected lists");
            return 0;
        }
        if (k > 0 && PyList_GET_SIZE(lists[k]) != *n) {
            PyErr_SetString(PyExc_ValueError, "lists of different lengths");
            return 0;
        }
        *n = PyList_GET_SIZE(lists[k]);
    }
    return 1;
}

/* One temp: created (never an existing file), given its group and mode, written whole,
 * its mtime set ``backdate_ns`` before now, stat'ed, optionally fsynced, closed; removed
 * again if any step failed. */
static void create_temp(temp_t *t, int fsync_each, long long backdate_ns) {
    const char *name = PyBytes_AS_STRING(t->name);
    int fd = (int)RETRY(openat(t->dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, t->mode));
    if (fd < 0) {
        t->err = errno;
        return;
    }
    if (t->gid != -1) { /* modes.apply_attrs: the group where we may give it, then the mode */
        if (RETRY(fstat(fd, &t->st)) < 0)
            t->err = errno;
        else if ((long)t->st.st_gid != t->gid && RETRY(fchown(fd, (uid_t)-1, (gid_t)t->gid)) < 0 && errno != EPERM &&
                 errno != EACCES)
            t->err = errno;
        if (!t->err && RETRY(fchmod(fd, t->mode)) < 0)
            t->err = errno;
    }
    Py_ssize_t done = 0;
    while (!t->err && done < t->size) {
        ssize_t n = write(fd, t->data + done, (size_t)(t->size - done));
        if (n < 0 && errno != EINTR)
            t->err = errno;
        else if (n == 0)
            t->err = EIO; /* no progress and no error: never loop on it */
        else if (n > 0)
            done += n;
    }
    if (!t->err && backdate_ns > 0) {
        struct timespec now, times[2];
        clock_gettime(CLOCK_REALTIME, &now);
        long long mtime_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec - backdate_ns;
        times[0].tv_sec = 0;
        times[0].tv_nsec = UTIME_OMIT;
        times[1].tv_sec = (time_t)(mtime_ns / 1000000000LL);
        times[1].tv_nsec = (long)(mtime_ns % 1000000000LL);
        if (RETRY(futimens(fd, times)) < 0)
            t->err = errno;
    }
    if (!t->err && RETRY(fstat(fd, &t->st)) < 0)
        t->err = errno;
    if (!t->err && t->gid == -1 && (int)(t->st.st_mode & 07777) != t->mode && RETRY(fchmod(fd, t->mode)) < 0)
        t->err = errno; /* the umask took bits away: set them */
    if (!t->err && fsync_each && RETRY(fsync(fd)) < 0)
        t->err = errno;
    if (close(fd) < 0 && !t->err)
        t->err = errno;
    if (t->err)
        unlinkat(t->dfd, name, 0);
}

PyDoc_STRVAR(create_temps_doc,
             "create_temps(dfds, names, datas, modes, gids, fsync_each, backdate_ns, /)\n--\n\n"
             "Create, write and close one temp per entry (O_CREAT|O_EXCL|O_NOFOLLOW in the folder\n"
             "``dfds[i]``), without the interpreter lock. ``gids[i]`` -1 leaves the kernel's group.\n"
             "Each temp's mtime is set ``backdate_ns`` before the moment it was written (0: left).\n"
             "Returns per entry (size, mtime_ns, inode) of the temp, or the errno that stopped it\n"
             "(the temp is then removed).");

static PyObject *create_temps(PyObject *self, PyObject *args) {
    PyObject *dfds, *names, *datas, *modes, *gids;
    int fsync_each;
    long long backdate_ns;
    if (!PyArg_ParseTuple(args, "OOOOOpL:create_temps", &dfds, &names, &datas, &modes, &gids, &fsync_each,
                          &backdate_ns))
        return NULL;
    PyObject *lists[] = {dfds, names, datas, modes, gids};
    Py_ssize_t n = 0;
    if (!same_length(lists, 5, &n))
        return NULL;
    temp_t *temps = PyMem_Calloc(n ? (size_t)n : 1, sizeof(temp_t));
    if (temps == NULL)
        return PyErr_NoMemory();
    PyObject *out = NULL;
    Py_ssize_t ready = 0;
    for (; ready < n; ready++) {
        temp_t *t = &temps[ready];
        long dfd, mode;
        PyObject *data = PyList_GET_ITEM(datas, ready);
        if (!as_int_at(dfds, ready, &dfd) || !as_int_at(modes, ready, &mode) || !as_int_at(gids, ready, &t->gid))
            goto done;
        if (!PyBytes_Check(data)) {
            PyErr_SetString(PyExc_TypeError, "datas: expected bytes");
            goto done;
        }
        if (!PyUnicode_FSConverter(PyList_GET_ITEM(names, ready), &t->name))
            goto done;
        t->dfd = (int)dfd;
        t->mode = (int)mode;
        t->data = PyBytes_AS_STRING(data); /* kept alive by ``datas``, which the caller holds */
        t->size = PyBytes_GET_SIZE(data);
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        create_temp(&temps[i], fsync_each, backdate_ns);
    Py_END_ALLOW_THREADS

    out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        temp_t *t = &temps[i];
        PyObject *item =
            t->err ? PyLong_FromLong(t->err)
                   : Py_BuildValue("(LLK)", (long long)t->st.st_size,
                                   (long long)t->st.st_mtim.tv_sec * 1000000000LL + t->st.st_mtim.tv_nsec,
                                   (unsigned long long)t->st.st_ino);
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, item);
    }
done:
    for (Py_ssize_t i = 0; i < ready; i++)
        Py_XDECREF(temps[i].name);
    if (ready < n)
        Py_XDECREF(temps[ready].name);
    PyMem_Free(temps);
    return out;
}

typedef struct {
    int dfd;
    PyObject *temp, *name; /* bytes, owned */
    long long seen_ns;
    int err;
} rename_t;

PyDoc_STRVAR(rename_new_doc,
             "rename_new(dfds, temps, names, /)\n--\n\n"
             "Rename each temp over its name in folder ``dfds[i]`` only if nothing is there\n"
             "(renameat2 RENAME_NOREPLACE), without the interpreter lock. Returns per entry the\n"
             "CLOCK_REALTIME just before its rename (ns) if it was renamed, else minus the errno\n"
             "(EEXIST: something is there; EINVAL, ENOSYS, EOPNOTSUPP: the filesystem cannot).");

static PyObject *rename_new(PyObject *self, PyObject *args) {
    PyObject *dfds, *temps, *names;
    if (!PyArg_ParseTuple(args, "OOO:rename_new", &dfds, &temps, &names))
        return NULL;
    PyObject *lists[] = {dfds, temps, names};
    Py_ssize_t n = 0;
    if (!same_length(lists, 3, &n))
        return NULL;
    rename_t *renames = PyMem_Calloc(n ? (size_t)n : 1, sizeof(rename_t));
    if (renames == NULL)
        return PyErr_NoMemory();
    PyObject *out = NULL;
    Py_ssize_t ready = 0;
    for (; ready < n; ready++) {
        rename_t *r = &renames[ready];
        long dfd;
        if (!as_int_at(dfds, ready, &dfd) || !PyUnicode_FSConverter(PyList_GET_ITEM(temps, ready), &r->temp))
            goto done;
        if (!PyUnicode_FSConverter(PyList_GET_ITEM(names, ready), &r->name))
            goto done;
        r->dfd = (int)dfd;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        rename_t *r = &renames[i];
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        r->seen_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
        if (RETRY(syscall(SYS_renameat2, r->dfd, PyBytes_AS_STRING(r->temp), r->dfd, PyBytes_AS_STRING(r->name),
                          RENAME_NOREPLACE)) < 0)
            r->err = errno;
    }
    Py_END_ALLOW_THREADS

    out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *item = PyLong_FromLongLong(renames[i].err ? -(long long)renames[i].err : renames[i].seen_ns);
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, item);
    }
done:
    for (Py_ssize_t i = 0; i <= ready && i < n; i++) {
        Py_XDECREF(renames[i].temp);
        Py_XDECREF(renames[i].name);
    }
    PyMem_Free(renames);
    return out;
}

static PyMethodDef methods[] = {
    {"create_temps", create_temps, METH_VARARGS, create_temps_doc},
    {"rename_new", rename_new, METH_VARARGS, rename_new_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mybb_sync._writes",
    "The system calls of a batch write, without the interpreter lock (see atomic.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__writes(void) { return PyModule_Create(&module); }
