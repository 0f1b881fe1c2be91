"""The init of one sprite: forks the commands the server asks for, reports how they end.

Runs inside the sprite's sandbox (PID 1 there, so when it ends every process of the
sprite ends with it), or as a plain host process in the unsandboxed fallback. It is
standard library only and Python 3.8+, fed on stdin to the sandbox's system
``python3`` (nothing of the server's installation is visible inside).

The server talks to it over one ``SOCK_SEQPACKET`` socket (fd number in ``argv[1]``),
one JSON message per packet, file descriptors riding along as ``SCM_RIGHTS``:

- ``{"op": "spawn", "id", "argv", "executable", "env", "cwd", "tty", "rows", "cols"}``
  with three fds (stdin, stdout, stderr) unless ``tty``; the answer is
  ``{"id", "pid"}`` (with the pty's master fd when ``tty``) or
  ``{"id", "error", "errno", "stage"}`` (stage ``cwd`` or ``exec``).
- ``{"op": "signal", "pid", "sig"}``: signal that process group; no answer.
- ``{"op": "connect", "id", "host", "port"}``: a TCP connection made from inside (the
  sprite's own loopback), answered ``{"id"}`` with the socket's fd, or with an error.
- From the init: ``{"ready": pid}`` once, and ``{"exit": pid, "status": code}`` for every
  child that ends (``status`` negative for death by signal, as ``subprocess`` reports).

Children start in a new session with default signal dispositions and an empty mask.
Piped ones start through ``subprocess`` (vfork and exec in C: nothing of Python runs in
the child, the quickest start there is); a pty's child is forked here, since it must
take the terminal (``TIOCSCTTY``) before it execs.
When the socket closes (the server went away), the init kills its children and exits.

The init is not dumpable: a sprite process (same uid) can neither ptrace it nor take
its fds (``pidfd_getfd``, ``/proc/1/fd``), so the control socket stays the server's.
``argv[2]``, when given, is a JSON object of options: ``uid`` (a root server's sandbox:
first become that user, with no supplementary groups and no capabilities at all, the
bounding set emptied), ``nproc`` and ``data`` (``RLIMIT_NPROC`` and ``RLIMIT_DATA`` set
on the init, so every process of the sprite inherits them; 0 leaves one alone).
"""

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import resource
import selectors
import signal
import socket
import stat
import struct
import subprocess
import sys
import termios
import threading

MAX_MESSAGE = 1 << 22
MAX_FDS = 4
CONNECT_TIMEOUT = 10.0


class Init:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        # pid -> its Popen (None when forked here), kept until reaped: a Popen dropped
        # unreaped would have subprocess reap it later and steal its exit status.
        self.children: dict[int, subprocess.Popen[bytes] | None] = {}
        self.send_lock = threading.Lock()

    def send(self, message, fds=()):
        data = json.dumps(message).encode()
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
        with self.send_lock:
            self.control.sendmsg([data], ancillary if fds else [])

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ, "control")
        selector.register(wake_r, selectors.EVENT_READ, "child")
        self.send({"ready": os.getpid()})
        while True:
            for key, _ in selector.select():
                if key.data == "child":
                    while True:
                        try:
                            if not os.read(wake_r, 512):
                                break
                        except BlockingIOError:
                            break
                    self.reap()
                elif not self.receive():
                    self.shutdown()
                    return

    def receive(self) -> bool:
        try:
            data, ancillary, _, _ = self.control.recvmsg(
                MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
        except InterruptedError:
            return True
        except ConnectionResetError:
            return False
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
        if not data:
            return False
        try:
            request = json.loads(data)
            op = request.get("op")
            if op == "spawn":
                try:
                    self.spawn(request, fds)
                except OSError as exc:  # fork or pty failed: out of processes, say
                    code = exc.errno or errno.EAGAIN
                    self.send({"id": request["id"], "error": os.strerror(code), "errno": code,
                               "stage": "exec"})
            elif op == "signal":
                with contextlib.suppress(OSError):
                    os.killpg(int(request["pid"]), int(request["sig"]))
            elif op == "connect":
                threading.Thread(target=self.connect, args=(request,), daemon=True).start()
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return True

    def spawn(self, request, fds) -> None:
        cwd = request["cwd"]
        try:
            if not stat.S_ISDIR(os.stat(cwd).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), cwd)
        except OSError as exc:
            self.send({"id": request["id"], "error": exc.strerror, "errno": exc.errno,
                       "stage": "cwd"})
            return
        if request.get("tty"):
            self.spawn_on_pty(request)
            return
        try:
            child = subprocess.Popen(
                request["argv"], executable=request["executable"], stdin=fds[0],
                stdout=fds[1], stderr=fds[2], cwd=cwd, env=request["env"],
                start_new_session=True, restore_signals=True)
        except OSError as exc:
            # subprocess names the directory when the child failed before exec (chdir)
            stage = "cwd" if exc.filename is cwd else "exec"
            code = exc.errno or errno.ENOEXEC
            self.send({"id": request["id"], "error": os.strerror(code), "errno": code,
                       "stage": stage})
            return
        self.children[child.pid] = child
        self.send({"id": request["id"], "pid": child.pid})

    def spawn_on_pty(self, request) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", request.get("rows", 24), request.get("cols", 80), 0, 0))
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            _exec_child(request, [slave, slave, slave], report_w)
        os.close(report_w)
        os.close(slave)
        with os.fdopen(report_r, "rb") as report:
            failure = report.read()
        if failure:
            os.waitpid(pid, 0)
            os.close(master)
            code = int(failure.decode().partition(":")[2] or errno.ENOEXEC)
            self.send({"id": request["id"], "error": os.strerror(code), "errno": code,
                       "stage": failure.decode().partition(":")[0]})
            return
        self.children[pid] = None
        try:
            self.send({"id": request["id"], "pid": pid}, [master])
        finally:
            os.close(master)

    def connect(self, request) -> None:
        try:
            conn = socket.create_connection((request["host"], int(request["port"])),
                                            timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            code = exc.errno or errno.ETIMEDOUT
            self.send({"id": request["id"], "error": os.strerror(code), "errno": code})
            return
        with conn:
            self.send({"id": request["id"]}, [conn.fileno()])

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                child = self.children.pop(pid)
                if child is not None:
                    child.returncode = code
                self.send({"exit": pid, "status": code})

    def shutdown(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def _exec_child(request, stdio, report_w) -> None:
    """In the forked child: the pty as stdio and controlling terminal, the session, the
    directory and the signals, then exec."""
    stage = "exec"
    try:
        os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        stage = "cwd"
        os.chdir(request["cwd"])
        stage = "exec"
        signal.set_wakeup_fd(-1)
        for number in range(1, signal.NSIG):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        env = request["env"]
        argv = request["argv"]
        executable = request["executable"]
        if "/" in executable:
            os.execve(executable, argv, env)
        else:
            os.execvpe(executable, argv, env)
    except OSError as exc:
        os.write(report_w, f"{stage}:{exc.errno or errno.ENOEXEC}".encode())
    except BaseException:
        os.write(report_w, f"exec:{errno.ENOEXEC}".encode())
    os._exit(127)


_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522


def become(uid: int) -> None:
    """Turn into ``uid``/``uid`` with nothing of the capabilities bwrap left us."""
    libc = ctypes.CDLL(None, use_errno=True)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    for cap in range(64):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            raise OSError(ctypes.get_errno(), "cannot empty the capability bounding set")
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    os.setresuid(uid, uid, uid)
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    nothing = (ctypes.c_uint32 * 6)()
    if libc.capset(header, nothing) != 0:
        raise OSError(ctypes.get_errno(), "cannot drop capabilities")


def main() -> None:
    for number in range(1, signal.NSIG):  # what a server under nohup passed down
        try:
            if signal.getsignal(number) == signal.SIG_IGN:
                signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    if options.get("uid") is not None:
        become(int(options["uid"]))
    for name, limit in ((resource.RLIMIT_NPROC, options.get("nproc")),
                        (resource.RLIMIT_DATA, options.get("data"))):
        if limit:
            resource.setrlimit(name, (int(limit), int(limit)))
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    control = socket.socket(fileno=int(sys.argv[1]))
    control.set_inheritable(False)
    Init(control).serve()


if __name__ == "__main__":
    main()
