"""The init of one sprite: forks the commands the server asks for, reports how they end.

Runs inside the sprite's sandbox (PID 1 there, so when it ends every process of the
sprite ends with it), or as a plain host process in the unsandboxed fallback. It is
standard library only and Python 3.8+, fed on stdin to the sandbox's system
``python3`` (nothing of the server's installation is visible inside).

The server talks to it over one ``SOCK_SEQPACKET`` socket (fd number in ``argv[1]``),
one message per packet, file descriptors riding along as ``SCM_RIGHTS``. The server's
messages are :mod:`marshal` dumps (the init trusts its server); the init's are JSON
objects of integers (and a stage word), which the server checks before it acts:

- ``{"op": "spawn", "id", "argv", "executable", "env", "cwd", "tty", "rows", "cols"}``
  with three fds (stdin, stdout, stderr) unless ``tty``; the answer is
  ``{"id", "pid"}`` (with the pty's master fd when ``tty``) or
  ``{"id", "errno", "stage"}`` (stage ``cwd`` or ``exec``).
- ``{"op": "signal", "pid", "sig"}``: signal that process group; no answer.
- ``{"op": "connect", "id", "host", "port"}``: a TCP connection made from inside (the
  sprite's own loopback), answered ``{"id"}`` with the socket's fd, or ``{"id", "errno"}``.
- From the init: ``{"ready": pid}`` once, and ``{"exit": pid, "status": code}`` for every
  child that ends (``status`` negative for death by signal, as ``subprocess`` reports).

Children are forked here and exec at once, in a new session with default signal
dispositions, an empty mask and no fd but their stdio (a pty's child first takes the
terminal, ``TIOCSCTTY``). A sprite's first exec waits for this init to start, so it
imports only what every start needs (no ``json``, ``subprocess`` or ``threading``:
their imports cost more than the rest of the start); the rest is imported when used.
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
import marshal
import os
import resource
import select
import signal
import socket
import stat
import struct
import sys

MAX_MESSAGE = 1 << 22
MAX_FDS = 4
CONNECT_TIMEOUT = 10.0


def encode(message) -> bytes:
    """The JSON of one of the init's messages: integers, and the stage words."""
    fields = []
    for key, value in message.items():
        if type(value) is not int and value not in ("cwd", "exec"):
            raise ValueError(f"the init does not send {key}={value!r}")
        fields.append(f'"{key}": {value}' if type(value) is int else f'"{key}": "{value}"')
    return ("{" + ", ".join(fields) + "}").encode()


class Init:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: set[int] = set()
        """The pids forked here and not yet reaped."""
        self.send_lock = None
        """A lock once a connect thread may send too (threading is imported then)."""

    def send(self, message, fds=()):
        data = encode(message)
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
        if self.send_lock is None:
            self.control.sendmsg([data], ancillary if fds else [])
            return
        with self.send_lock:
            self.control.sendmsg([data], ancillary if fds else [])

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        poller = select.poll()
        poller.register(self.control, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        self.send({"ready": os.getpid()})
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == wake_r:
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
            request = marshal.loads(data)
            op = request.get("op")
            if op == "spawn":
                try:
                    self.spawn(request, fds)
                except OSError as exc:  # fork or pty failed: out of processes, say
                    self.send({"id": request["id"], "errno": exc.errno or errno.EAGAIN,
                               "stage": "exec"})
            elif op == "signal":
                with contextlib.suppress(OSError):
                    os.killpg(int(request["pid"]), int(request["sig"]))
            elif op == "connect":
                self.connect_soon(request)
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
            self.send({"id": request["id"], "errno": exc.errno, "stage": "cwd"})
            return
        if request.get("tty"):
            self.spawn_on_pty(request)
            return
        pid = self.start_child(request, fds[:3], tty=False)
        if pid is not None:
            self.send({"id": request["id"], "pid": pid})

    def spawn_on_pty(self, request) -> None:
        import fcntl
        import termios

        master, slave = os.openpty()
        fcntl.ioctl(master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", request.get("rows", 24), request.get("cols", 80), 0, 0))
        try:
            pid = self.start_child(request, [slave, slave, slave], tty=True)
        finally:
            os.close(slave)
        if pid is None:
            os.close(master)
            return
        try:
            self.send({"id": request["id"], "pid": pid}, [master])
        finally:
            os.close(master)

    def start_child(self, request, stdio, tty: bool):
        """Fork and exec the request's command on ``stdio``: its pid, or None once the
        failure is answered. Returns when the child has exec'd (its report pipe, closed
        on exec, reads empty) or failed (the pipe says at which stage)."""
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            _exec_child(request, stdio, report_w, tty)
        os.close(report_w)
        chunks = []
        while True:
            try:
                chunk = os.read(report_r, 64)
            except InterruptedError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
        os.close(report_r)
        failure = b"".join(chunks).decode()
        if failure:
            os.waitpid(pid, 0)
            stage, _, code = failure.partition(":")
            self.send({"id": request["id"], "errno": int(code or errno.ENOEXEC),
                       "stage": "cwd" if stage == "cwd" else "exec"})
            return None
        self.children.add(pid)
        return pid

    def connect_soon(self, request) -> None:
        import threading

        if self.send_lock is None:
            self.send_lock = threading.Lock()
        threading.Thread(target=self.connect, args=(request,), daemon=True).start()

    def connect(self, request) -> None:
        try:
            conn = socket.create_connection((request["host"], int(request["port"])),
                                            timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            self.send({"id": request["id"], "errno": exc.errno or errno.ETIMEDOUT})
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
                self.children.discard(pid)
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                self.send({"exit": pid, "status": code})

    def shutdown(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def _exec_child(request, stdio, report_w, tty) -> None:
    """In the forked child: stdio (a pty also as the controlling terminal), the
    session, nothing else of the init's fds, the directory and the signals, then exec."""
    stage = "exec"
    try:
        os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        os.closerange(3, report_w)
        os.closerange(report_w + 1, os.sysconf("SC_OPEN_MAX"))
        if tty:
            import fcntl
            import termios

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
    options = marshal.loads(bytes.fromhex(sys.argv[2])) if len(sys.argv) > 2 else {}
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
