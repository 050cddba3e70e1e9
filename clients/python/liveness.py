"""liveness: publish an application's health in run-dir files for healthbridge.

The API of the "liveness" tool that healthbridge's run-dir protocol comes from
(seed 002), standard library only:

    import liveness
    liveness.load(["myapp.checks.db", "myapp.checks.disk"])   # start-up checks, then writes the pid
    liveness.set(error_code=0)                                 # at the start of the main routine
    liveness.set(error_code=3)                                 # any time health changes: non-zero is unhealthy
    liveness.reset()                                           # at shutdown: back to "not started"

Files (docs/rundir.md): <rundir>/<unit>/pid and <rundir>/<unit>/error, each a
decimal number and a newline, written atomically (temporary file + rename).
rundir defaults to $HEALTHBRIDGE_RUNDIR, else /run/<HOSTNAME>; unit defaults
to $HEALTHBRIDGE_UNIT, else the program's name.
"""

import importlib
import os
import socket
import sys
import tempfile
import threading

__all__ = ["load", "set", "reset", "default_rundir", "default_unit"]

PID_FILE = "pid"
ERROR_FILE = "error"

_lock = threading.Lock()
_loaded = {}  # unit directory -> True once load() succeeded


def default_rundir():
    """$HEALTHBRIDGE_RUNDIR, else /run/<HOSTNAME> as the original tool."""
    d = os.environ.get("HEALTHBRIDGE_RUNDIR")
    if d:
        return d
    return os.path.join("/run", os.environ.get("HOSTNAME") or socket.gethostname())


def default_unit():
    """$HEALTHBRIDGE_UNIT, else the program's file name without extension."""
    u = os.environ.get("HEALTHBRIDGE_UNIT")
    if u:
        return u
    name = os.path.basename(sys.argv[0] or "python") or "python"
    return os.path.splitext(name)[0]


def _unit_dir(rundir, unit):
    rundir = rundir or default_rundir()
    unit = unit or default_unit()
    if unit in (".", "..") or "/" in unit:
        raise ValueError("invalid unit name %r: must be a single path element" % unit)
    return os.path.join(rundir, unit)


def _write_atomic(directory, name, value):
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("%d\n" % int(value))
        os.chmod(tmp, 0o644)
        os.rename(tmp, os.path.join(directory, name))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(modules, *args, rundir=None, unit=None, **kwargs):
    """Run every module's health(*args, **kwargs), then write the pid.

    modules: names of modules (imported here) or module objects, each with a
    global health(*args, **kwargs). A module returning False raises
    RuntimeError and nothing is written; other exceptions propagate untouched.
    """
    for m in modules:
        mod = importlib.import_module(m) if isinstance(m, str) else m
        if mod.health(*args, **kwargs) is False:
            raise RuntimeError("health check failed: %s" % getattr(mod, "__name__", m))
    d = _unit_dir(rundir, unit)
    with _lock:
        os.makedirs(d, exist_ok=True)
        try:
            os.unlink(os.path.join(d, ERROR_FILE))
        except FileNotFoundError:
            pass
        _write_atomic(d, PID_FILE, os.getpid())
        _loaded[d] = True


def set(error_code=0, rundir=None, unit=None):  # noqa: A001 - the original API's name
    """Record the current error code: 0 healthy, anything else unhealthy."""
    d = _unit_dir(rundir, unit)
    with _lock:
        if not _loaded.get(d):
            raise RuntimeError("liveness: not loaded: call load() first")
        _write_atomic(d, ERROR_FILE, error_code)


def reset(rundir=None, unit=None):
    """At shutdown: remove the state, back to "not started"."""
    d = _unit_dir(rundir, unit)
    with _lock:
        _loaded.pop(d, None)
        for name in (ERROR_FILE, PID_FILE):
            try:
                os.unlink(os.path.join(d, name))
            except FileNotFoundError:
                pass
