"""Drives clients/python/liveness.py from stdin, one command per line:
load | load-fail | set N | reset | quit. Prints "done" or "error: ..." after each."""
import sys
import types

sys.path.insert(0, sys.argv[1])  # clients/python
import liveness  # noqa: E402

rundir, unit = sys.argv[2], sys.argv[3]

ok_mod = types.ModuleType("ok_mod")
ok_mod.health = lambda *a, **k: True
bad_mod = types.ModuleType("bad_mod")
bad_mod.health = lambda *a, **k: False

for line in sys.stdin:
    cmd = line.split()
    try:
        if cmd[0] == "load":
            liveness.load([ok_mod], rundir=rundir, unit=unit)
        elif cmd[0] == "load-fail":
            try:
                liveness.load([ok_mod, bad_mod], rundir=rundir, unit=unit)
            except RuntimeError as e:
                print("raised: %s" % e, flush=True)
                continue
            print("error: no RuntimeError", flush=True)
            continue
        elif cmd[0] == "set":
            liveness.set(error_code=int(cmd[1]), rundir=rundir, unit=unit)
        elif cmd[0] == "reset":
            liveness.reset(rundir=rundir, unit=unit)
        elif cmd[0] == "quit":
            break
        print("done", flush=True)
    except Exception as e:  # report, keep going
        print("error: %r" % e, flush=True)
