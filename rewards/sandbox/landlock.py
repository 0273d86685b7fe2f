"""Landlock for the sandboxed child, through raw syscalls (ctypes; no dependency).

Standard library only: imported by the fork server, which runs under ``python -I -S``.

The server builds a :class:`Landlock` once (probe the ABI, open the read-only rule paths as
``O_PATH`` fds kept at high numbers); each sandboxed child calls :meth:`Landlock.apply` with its own
writable directories, which costs one ``landlock_create_ruleset``, one ``landlock_add_rule`` per
path and one ``landlock_restrict_self``. The domain is inherited by every descendant of the child
and cannot be lifted; the server itself is never restricted.

Policy (what a sandboxed process may do with the filesystem, everything else being denied):

* read + execute (``EXECUTE | READ_FILE | READ_DIR``) beneath the runtime paths;
* read, write, truncate and ioctl on the device files given (``/dev/null``, ``/dev/urandom``...);
* everything but creating device nodes beneath the writable directories (the per-execution dir);
* ABI >= 4: no TCP bind/connect at all; ABI >= 6: no signal to, and no abstract UNIX socket
  connection with, any process outside the child's own domain (scoping); ABI >= 7: denials are not
  written to the audit log (a hostile program would flood it).

Rights the running ABI does not know are left out of the handled set (``REFER`` from ABI 2,
``TRUNCATE`` 3, TCP 4, ``IOCTL_DEV`` 5, scoping 6); on ABI 1 a rename or link across directories is
always refused. Metadata is outside Landlock's reach: ``stat``/``readlink``/path lookup work
everywhere (a program can learn that a path exists, not read, list, write, create, remove or execute
it), and so do ``chmod``/``chown``/``utime``/xattr calls, which only file ownership (the slot uid) stops.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os

_NR_CREATE_RULESET, _NR_ADD_RULE, _NR_RESTRICT_SELF = 444, 445, 446  # same number on every architecture
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1

# LANDLOCK_ACCESS_FS_* (include/uapi/linux/landlock.h)
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4 (LANDLOCK_ACCESS_NET_*)
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6 (LANDLOCK_SCOPE_*)
RESTRICT_SELF_LOG_SAME_EXEC_OFF = 1 << 0  # ABI 7

# the only rights a rule on a non-directory may carry
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
RO = EXECUTE | READ_FILE | READ_DIR
DEV = READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV
RW = (1 << 16) - 1 & ~(MAKE_CHAR | MAKE_BLOCK | IOCTL_DEV)
_RULE_FD_MIN = 100  # rule fds live above the fds a child dup2()s onto (0-5)

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class LandlockUnavailable(OSError):
    """The kernel cannot enforce Landlock here; the message says why and what to change."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def unavailable_reason(err: int) -> str:
    if err == errno.ENOSYS:
        return ("Landlock unavailable (ENOSYS): the kernel was built without CONFIG_SECURITY_LANDLOCK "
                "(Linux >= 5.13 needed) or a container seccomp profile blocks the landlock_* syscalls")
    if err == errno.EOPNOTSUPP:
        return ("Landlock unavailable (EOPNOTSUPP): built into the kernel but not enabled; add 'landlock' to the "
                "lsm= kernel boot parameter (see /sys/kernel/security/lsm)")
    return f"Landlock unavailable ({errno.errorcode.get(err, err)}: {os.strerror(err)})"


def abi_version() -> int:
    """The running kernel's Landlock ABI (>= 1), or :class:`LandlockUnavailable`."""
    ret = _syscall(ctypes.c_long(_NR_CREATE_RULESET), None, ctypes.c_size_t(0),
                   ctypes.c_uint32(_CREATE_RULESET_VERSION))
    if ret < 0:
        err = ctypes.get_errno()
        raise LandlockUnavailable(err, unavailable_reason(err))
    return int(ret)


def handled_fs(abi: int) -> int:
    mask = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        mask |= REFER
    if abi >= 3:
        mask |= TRUNCATE
    if abi >= 5:
        mask |= IOCTL_DEV
    return mask


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return int(ret)


class Landlock:
    """A policy built once in the fork server; :meth:`apply` restricts the calling process for good."""

    def __init__(self, ro_paths: list[str], dev_paths: list[str]) -> None:
        self.abi = abi_version()
        self.fs = handled_fs(self.abi)
        self.net = NET_BIND_TCP | NET_CONNECT_TCP if self.abi >= 4 else 0
        self.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if self.abi >= 6 else 0
        self.flags = RESTRICT_SELF_LOG_SAME_EXEC_OFF if self.abi >= 7 else 0
        # Always the full (24-byte) struct: older kernels accept it because the fields they lack are zero.
        self._attr = _RulesetAttr(self.fs, self.net, self.scoped)
        self._fds: list[int] = []
        self._rules: list[_PathBeneathAttr] = []
        self.paths: list[tuple[str, int]] = []
        self._seen: dict[tuple[int, int], int] = {}  # (dev, ino) → index: /lib, /bin... are /usr/lib, /usr/bin
        for paths, access in ((ro_paths, RO), (dev_paths, DEV)):
            for p in paths:
                self._add_fixed(p, access)

    def _add_fixed(self, path: str, access: int) -> None:
        real = os.path.realpath(path)
        for prev, prev_access in self.paths:  # /lib, /bin... are /usr/lib, /usr/bin: already covered by /usr
            if (real == prev or real.startswith(prev.rstrip("/") + "/")) and access & self.fs & ~prev_access == 0:
                return
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:  # missing or unreachable: nothing to grant (a rule only ever adds access)
            return
        st = os.fstat(fd)
        allowed = self._allowed(st.st_mode, access)
        key = (st.st_dev, st.st_ino)
        if not allowed or key in self._seen:  # nothing to grant, or the same inode under another name
            os.close(fd)
            if allowed:
                i = self._seen[key]
                self._rules[i].allowed_access |= allowed
                self.paths[i] = (self.paths[i][0], self._rules[i].allowed_access)
            return
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _RULE_FD_MIN)
        os.close(fd)
        self._seen[key] = len(self._rules)
        self._fds.append(high)
        self._rules.append(_PathBeneathAttr(allowed, high))
        self.paths.append((real, allowed))

    def _allowed(self, mode: int, access: int) -> int:
        import stat

        access &= self.fs
        if not stat.S_ISDIR(mode):
            access &= FILE_RIGHTS
        return access

    def describe(self) -> dict:
        return {"abi": self.abi, "handled_fs": self.fs, "net": self.net, "scoped": self.scoped,
                "signal_scoping": bool(self.scoped & SCOPE_SIGNAL),
                "abstract_unix_scoping": bool(self.scoped & SCOPE_ABSTRACT_UNIX_SOCKET), "paths": list(self.paths)}

    def apply(self, rw_dirs: list[str]) -> None:
        """Restrict the calling process (and its future descendants): the fixed rules plus full access
        beneath ``rw_dirs``. Sets no-new-privs (needed without CAP_SYS_ADMIN; seccomp sets it anyway)."""
        _check(_libc.prctl(ctypes.c_int(38), ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                           ctypes.c_ulong(0)), "prctl(NO_NEW_PRIVS)")
        rs = _check(_syscall(ctypes.c_long(_NR_CREATE_RULESET), ctypes.byref(self._attr),
                             ctypes.c_size_t(ctypes.sizeof(self._attr)), ctypes.c_uint32(0)), "landlock_create_ruleset")
        try:
            for rule in self._rules:
                _check(_syscall(ctypes.c_long(_NR_ADD_RULE), ctypes.c_int(rs), ctypes.c_int(_RULE_PATH_BENEATH),
                                ctypes.byref(rule), ctypes.c_uint32(0)), "landlock_add_rule")
            for d in rw_dirs:
                fd = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    rule = _PathBeneathAttr(RW & self.fs, fd)
                    _check(_syscall(ctypes.c_long(_NR_ADD_RULE), ctypes.c_int(rs), ctypes.c_int(_RULE_PATH_BENEATH),
                                    ctypes.byref(rule), ctypes.c_uint32(0)), f"landlock_add_rule {d}")
                finally:
                    os.close(fd)
            _check(_syscall(ctypes.c_long(_NR_RESTRICT_SELF), ctypes.c_int(rs), ctypes.c_uint32(self.flags)),
                   "landlock_restrict_self")
        finally:
            os.close(rs)

    def self_test(self, rw_dir: str | None, readable: str) -> None:
        """Fork a child that applies the policy and checks it bites: ``readable`` (a runtime file) can be
        read; with ``rw_dir``: ``/`` cannot be listed and ``rw_dir`` can be written; ABI >= 6: the parent
        cannot be signalled. Raises :class:`LandlockUnavailable` otherwise (fail closed)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            msg = "ok"
            try:
                self.apply([rw_dir] if rw_dir else [])
                with open(readable, "rb") as f:
                    f.read(1)
                if rw_dir:
                    try:
                        os.listdir("/")
                        msg = "'/' still listable after landlock_restrict_self"
                    except PermissionError:
                        pass
                    with open(os.path.join(rw_dir, "probe"), "w") as f:
                        f.write("x")
                if self.scoped & SCOPE_SIGNAL:
                    try:
                        os.kill(os.getppid(), 0)
                        msg = "signal scoping did not apply"
                    except PermissionError:
                        pass
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                msg = f"{type(e).__name__}: {e}"
            os.write(w, msg.encode()[:500])
            os._exit(0)
        os.close(w)
        with open(r, "rb") as f:
            msg = f.read().decode()
        os.waitpid(pid, 0)
        if msg != "ok":
            raise LandlockUnavailable(errno.EPERM, f"Landlock self-test failed: {msg}")

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
