#!/usr/bin/env python3
# A stand-in for crun in host tests (no VM, no cgroups): runs the container's process.args as a plain process.
# create: forks the init, which waits on a fifo until "start"; writes the pid file; exits (the init is
# reparented to the agent, a child subreaper). exec --detach: forks process.args of the --process file.
# kill/pause/resume/ps/delete act on the recorded pid. Errors go to the --log file and stderr, like crun.
import json, os, signal, sys

def fail(log, msg):
    if log:
        with open(log, "a") as f: f.write(msg + "\n")
    sys.stderr.write(msg + "\n")
    sys.exit(1)

argv = sys.argv[1:]
root, log = "/tmp/fake-crun", None
while argv and argv[0].startswith("--"):
    opt = argv.pop(0)
    if opt == "--root": root = argv.pop(0)
    elif opt == "--log": log = argv.pop(0)
    elif opt.startswith("--log="): log = opt[6:]
cmd = argv.pop(0)
opts, rest = {}, []
while argv:
    a = argv.pop(0)
    if a in ("--bundle", "--pid-file", "--console-socket", "--process", "--format"): opts[a] = argv.pop(0)
    elif a.startswith("--"): opts[a] = True
    else: rest.append(a)
os.makedirs(root, exist_ok=True)
state = lambda cid: os.path.join(root, cid + ".json")

def load(cid):
    try:
        with open(state(cid)) as f: return json.load(f)
    except FileNotFoundError: fail(log, f"container `{cid}` does not exist")

def spawn(args, wait_fifo, pid_file):
    if not os.path.isabs(args[0]) and "/" in args[0] or (os.path.isabs(args[0]) and not os.path.exists(args[0])):
        fail(log, f"executable file `{args[0]}` not found in $PATH: No such file or directory")
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if wait_fifo:
            with open(wait_fifo, "rb") as f: f.read(1)
        try: os.execvp(args[0], args)
        except OSError as e:
            sys.stderr.write(f"exec {args[0]}: {e}\n"); os._exit(127)
    with open(pid_file, "w") as f: f.write(str(pid))
    return pid

if cmd == "create":
    cid = rest[0]
    if os.path.exists(state(cid)): fail(log, f"container `{cid}` already exists")
    with open(os.path.join(opts["--bundle"], "config.json")) as f: spec = json.load(f)
    if "--console-socket" in opts: fail(log, "fake crun: terminals are not supported")
    fifo = os.path.join(root, cid + ".fifo")
    if os.path.exists(fifo): os.unlink(fifo)
    os.mkfifo(fifo)
    pid = spawn(spec["process"]["args"], fifo, opts["--pid-file"])
    with open(state(cid), "w") as f: json.dump({"pid": pid, "fifo": fifo}, f)
elif cmd == "start":
    s = load(rest[0])
    fd = os.open(s["fifo"], os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"0"); os.close(fd)
elif cmd == "exec":
    s = load(rest[0])
    if "--console-socket" in opts: fail(log, "fake crun: terminals are not supported")
    with open(opts["--process"]) as f: proc = json.load(f)
    spawn(proc["args"], None, opts["--pid-file"])
elif cmd == "kill":
    s = load(rest[0])
    try: os.kill(s["pid"], int(rest[1]))
    except ProcessLookupError: fail(log, "container not running")
elif cmd in ("pause", "resume"):
    s = load(rest[0])
    os.kill(s["pid"], signal.SIGSTOP if cmd == "pause" else signal.SIGCONT)
elif cmd == "ps":
    s = load(rest[0])
    print(json.dumps([s["pid"]]))
elif cmd == "delete":
    s = load(rest[0])
    if "--force" in opts:
        try: os.kill(s["pid"], signal.SIGKILL)
        except ProcessLookupError: pass
    os.unlink(state(rest[0]))
    if os.path.exists(s["fifo"]): os.unlink(s["fifo"])
else:
    fail(log, f"fake crun: unknown command {cmd}")
