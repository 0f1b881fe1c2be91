"""The init of one sprite: forks the commands the server asks for, reports how they end.

Runs inside the sprite's sandbox (PID 1 there, so when it ends every process of the
sprite ends with it), or as a plain host process in the unsandboxed fallback. It is
standard library only and Python 3.8+, fed on stdin to the sandbox's system
``python3`` (nothing of the server's installation is visible inside).

Its start is on the path of a sprite's first command, so before it says ``ready`` it
imports only C modules and ``os`` (``json``, ``subprocess``, ``socket``, ``signal`` and
``threading`` would cost more than the interpreter's own start): requests are NUL
separated fields, and its answers are JSON written here.

The server talks to it over one ``SOCK_SEQPACKET`` socket (fd number in ``argv[1]``),
one message per packet, file descriptors riding along as ``SCM_RIGHTS``. Requests
(fields joined by NUL bytes, which no field can hold; see ``init_channel.encode_request``):

- ``spawn ID TTY ROWS COLS CWD EXECUTABLE ARGC ARGV... ENV...`` (``ENV`` as ``KEY=VALUE``)
  with three fds (stdin, stdout, stderr) unless ``TTY`` is 1; the answer is
  ``{"id", "pid"}`` (with the pty's master fd for a tty) or
  ``{"id", "error", "errno", "stage"}`` (stage ``cwd`` or ``exec``).
- ``signal PID SIG``: signal that process group; no answer.
- ``connect ID HOST PORT``: a TCP connection made from inside (the sprite's own
  loopback), answered ``{"id"}`` with the socket's fd, or with an error.
- From the init, JSON: ``{"ready": pid}`` once, and ``{"exit": pid, "status": code}`` for
  every child that ends (``status`` negative for death by signal, as ``subprocess`` says).

Children start in a new session with default signal dispositions and an empty mask,
with no fd of the init's (every fd it inherited is made close-on-exec at its start,
and what it opens is so by default); a pty's child takes it as its terminal.
When the socket closes (the server went away), the init kills its children and exits.

The init is not dumpable: a sprite process (same uid) can neither ptrace it nor take
its fds (``pidfd_getfd``, ``/proc/1/fd``), so the control socket stays the server's.
``argv[2:]``, when given, are ``NAME=NUMBER`` options: ``uid`` (a root server's sandbox:
first become that user, with no supplementary groups and no capabilities at all, the
bounding set emptied), ``nproc`` and ``data`` (``RLIMIT_NPROC`` and ``RLIMIT_DATA`` set
on the init, so every process of the sprite inherits them).
"""

import _signal
import _socket
import _thread
import ctypes
import errno
import os
import resource
import select
import struct
import sys

MAX_MESSAGE = 1 << 22
MAX_FDS = 4
CONNECT_TIMEOUT = 10.0
_SIGNALS = _signal.valid_signals()


class Init:
    def __init__(self, control) -> None:
        self.control = control
        self.children: set[int] = set()  # pids forked and not yet reaped
        self.send_lock = _thread.allocate_lock()

    def send(self, message, fds=()):
        data = json_object(message)
        ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                      struct.pack(f"{len(fds)}i", *fds))] if fds else []
        with self.send_lock:
            self.control.sendmsg([data], ancillary)

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        _signal.set_wakeup_fd(wake_w)
        _signal.signal(_signal.SIGCHLD, lambda *_: None)
        poller = select.poll()
        poller.register(self.control.fileno(), select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        self.send({"ready": os.getpid()})
        while True:
            for fd, _ in poller.poll():
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
                MAX_MESSAGE, _socket.CMSG_SPACE(MAX_FDS * 4), _socket.MSG_CMSG_CLOEXEC)
        except InterruptedError:
            return True
        except ConnectionResetError:
            return False
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
        if not data:
            return False
        try:
            fields = data.split(b"\0")
            op = fields[0]
            if op == b"spawn":
                self.spawn(fields, fds)
            elif op == b"signal":
                with ignoring(OSError, ValueError, IndexError):
                    os.killpg(int(fields[1]), int(fields[2]))
            elif op == b"connect":
                _thread.start_new_thread(self.connect, (fields,))
        finally:
            for fd in fds:
                with ignoring(OSError):
                    os.close(fd)
        return True

    def spawn(self, fields, fds) -> None:
        try:
            request_id, tty, rows, cols = (int(field) for field in fields[1:5])
            cwd, executable, argc = fields[5], fields[6], int(fields[7])
            argv = fields[8:8 + argc]
            env = dict(item.partition(b"=")[::2] for item in fields[8 + argc:])
        except (ValueError, IndexError):
            return  # no init of the server's sends this; nobody waits for an id
        master = None
        try:
            if tty:
                master, slave = open_pty(rows, cols)
                try:
                    pid = start_child(cwd, executable, argv, env, [slave] * 3, tty=True)
                finally:
                    os.close(slave)
            else:
                pid = start_child(cwd, executable, argv, env, fds, tty=False)
        except StageError as exc:
            if master is not None:
                os.close(master)
            code = exc.errno or errno.EIO
            self.send({"id": request_id, "error": os.strerror(code), "errno": code,
                       "stage": exc.stage})
            return
        self.children.add(pid)
        try:
            self.send({"id": request_id, "pid": pid}, [] if master is None else [master])
        finally:
            if master is not None:
                os.close(master)

    def connect(self, fields) -> None:
        try:
            request_id = int(fields[1])
            host, port = fields[2].decode(), int(fields[3])
        except (ValueError, IndexError):
            return
        try:
            conn = _connected(host, port)
        except OSError as exc:
            code = exc.errno or errno.ETIMEDOUT
            self.send({"id": request_id, "error": os.strerror(code), "errno": code})
            return
        try:
            self.send({"id": request_id}, [conn.fileno()])
        finally:
            conn.close()

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
            with ignoring(OSError):
                os.killpg(pid, _signal.SIGKILL)


class ignoring:
    """``contextlib.suppress``, without importing ``contextlib`` (and ``collections``)."""

    def __init__(self, *kinds) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, traceback) -> bool:
        return kind is not None and issubclass(kind, self.kinds)


class StageError(OSError):
    """A command did not start; ``stage`` says where (``cwd`` or ``exec``)."""

    def __init__(self, code, stage) -> None:
        super().__init__(code, os.strerror(code or errno.EIO))
        self.stage = stage


def open_pty(rows, cols):
    """A new pty of ``rows`` x ``cols``: (master, slave), or StageError."""
    import fcntl
    import termios
    try:
        master, slave = os.openpty()
    except OSError as exc:
        raise StageError(exc.errno, "exec") from None
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return master, slave


def start_child(cwd, executable, argv, env, stdio, tty):
    """Fork and exec a command on the fds ``stdio`` (a pty's slave as its controlling
    terminal when ``tty``); its pid once it execs, or StageError. Forked rather than
    ``posix_spawn``ed: glibc's leaves its internal signals ignored in the command."""
    if len(stdio) != 3 or not argv or not argv[0]:
        raise StageError(errno.EINVAL if len(stdio) == 3 else errno.EBADF, "exec")
    report_r, report_w = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(report_r)
        os.close(report_w)
        raise StageError(exc.errno, "exec") from None
    if pid == 0:
        os.close(report_r)
        _exec_child(cwd, executable, argv, env, stdio, tty, report_w)
    os.close(report_w)
    with open(report_r, "rb") as report:
        failure = report.read()
    if failure:
        os.waitpid(pid, 0)
        stage, _, code = failure.decode().partition(":")
        raise StageError(int(code or errno.ENOEXEC), stage)
    return pid


def _worse(failure, exc):
    """The error to report of two (as ``execvp``: the first that is not a miss)."""
    return exc if failure is None or failure.errno in (errno.ENOENT, errno.ENOTDIR) else failure


def _candidates(executable, env):
    """The paths ``execvpe`` would try: ``executable`` itself when it holds a slash, else
    it in each directory of the command's own ``PATH`` that has such an entry."""
    if b"/" in executable:
        return [executable]
    found = []
    for directory in env.get(b"PATH", os.defpath.encode()).split(b":"):
        path = (directory or b".") + b"/" + executable
        with ignoring(OSError):
            os.stat(path)
            found.append(path)
    return found or [executable]


def _exec_child(cwd, executable, argv, env, stdio, tty, report_w) -> None:
    """In the forked child: a new session, ``stdio`` (and the terminal), the directory,
    default signals and an empty mask, then exec; what failed goes to ``report_w``."""
    stage = "exec"
    try:
        os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        if tty:
            import fcntl
            import termios
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        stage = "cwd"
        os.chdir(cwd)
        stage = "exec"
        _signal.set_wakeup_fd(-1)
        for number in _SIGNALS:
            with ignoring(OSError, ValueError):
                _signal.signal(number, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
        failure = None
        for path in _candidates(executable, env):
            try:
                os.execve(path, argv, env)
            except OSError as exc:
                failure = _worse(failure, exc)
        raise failure or OSError(errno.ENOENT, os.strerror(errno.ENOENT))
    except OSError as exc:
        os.write(report_w, f"{stage}:{exc.errno or errno.ENOEXEC}".encode())
    except BaseException:
        os.write(report_w, f"exec:{errno.ENOEXEC}".encode())
    os._exit(127)

def _connected(host, port):
    """A TCP connection to ``host:port`` (each address in turn), or the last OSError."""
    failure = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0,
                                                                _socket.SOCK_STREAM):
        conn = _socket.socket(family, kind, proto)
        try:
            conn.settimeout(CONNECT_TIMEOUT)
            conn.connect(address)
            conn.setblocking(True)
            return conn
        except OSError as exc:
            conn.close()
            failure = exc
    raise failure or OSError(errno.EHOSTUNREACH, os.strerror(errno.EHOSTUNREACH))


def json_object(message) -> bytes:
    """``message`` (str keys, int or str values) as JSON, without importing ``json``."""
    return ("{" + ",".join(f"{_json_string(key)}:{_json_value(value)}"
                           for key, value in message.items()) + "}").encode()


def _json_value(value) -> str:
    return str(int(value)) if isinstance(value, int) else _json_string(value)


def _json_string(text) -> str:
    return '"' + "".join(
        char if " " <= char < "\x7f" and char not in '"\\'
        else f"\\u{ord(char):04x}" if ord(char) < 0x10000 else "?" for char in text) + '"'


_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522


def become(libc, uid: int) -> None:
    """Turn into ``uid``/``uid`` with nothing of the capabilities bwrap left us."""
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


def keep_no_inherited_fd(control: int) -> None:
    """Mark every fd the init inherited beyond stdio and ``control`` close-on-exec, so
    no command it starts gets one (``posix_spawn`` closes nothing by itself)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every fd the limit allows
        fds = list(range(3, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1 << 16)))
    for fd in fds:
        if fd > 2 and fd != control:
            with ignoring(OSError):  # the directory's own fd, closed by now
                os.set_inheritable(fd, False)


def main() -> None:
    control_fd = int(sys.argv[1])
    keep_no_inherited_fd(control_fd)
    for number in _SIGNALS:  # what a server under nohup passed down
        try:
            if _signal.getsignal(number) == _signal.SIG_IGN:
                _signal.signal(number, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
    options = {}
    for option in sys.argv[2:]:
        name, _, value = option.partition("=")
        options[name] = int(value)
    libc = ctypes.CDLL(None, use_errno=True)
    if "uid" in options:
        become(libc, options["uid"])
    for kind, limit in ((resource.RLIMIT_NPROC, options.get("nproc")),
                        (resource.RLIMIT_DATA, options.get("data"))):
        if limit:
            resource.setrlimit(kind, (limit, limit))
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    os.set_inheritable(control_fd, False)
    Init(_socket.socket(fileno=control_fd)).serve()


if __name__ == "__main__":
    main()
