"""A small seccomp-BPF deny list, assembled by hand (no libseccomp needed), x86_64 only.

Everything not listed is allowed: the namespaces, rlimits and uid drop do the containment;
this filter removes the kernel attack surface and the cross-sandbox channels they leave
(ptrace, mount, namespace creation, io_uring, bpf, keyrings, file locks on shared read-only
files, TIOCSTI, non-UNIX sockets). Other ABIs (int 0x80, x32) kill the process outright.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from rewards.sandbox.linux import PR_SET_NO_NEW_PRIVS, prctl

AUDIT_ARCH_X86_64 = 0xC000003E
RET_KILL_PROCESS = 0x80000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000

# BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_CLONE_NEW_MASK = 0x7E020080  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME
_TIOCSTI = 0x5412
_LOCK_CMDS = (5, 6, 7, 36, 37, 38)  # F_GETLK/F_SETLK/F_SETLKW and their OFD variants

# x86_64 syscall numbers denied outright (EPERM).
DENY = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165, "umount2": 166,
    "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "keyctl": 250, "add_key": 248, "request_key": 249, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167,
    "swapoff": 168, "acct": 163, "open_by_handle_at": 304, "name_to_handle_at": 303, "flock": 73,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "setdomainname": 171, "sethostname": 170, "settimeofday": 164,
    "clock_settime": 227, "adjtimex": 159, "quotactl": 179, "lookup_dcookie": 212, "vhangup": 153,
    "fanotify_init": 300, "mq_open": 240, "shmget": 29, "msgget": 68, "semget": 64,
}
# Metadata changes Landlock does not cover. Denied only where nothing else stops them: tiers without a
# mount namespace whose programs run under the trainer's own uid (non-root), where a program could
# chmod/chown/touch/xattr the owner's files it can name but not open (site-packages, checkpoints, ~/.ssh).
DENY_METADATA = {
    "chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94, "utime": 132, "utimes": 235,
    "fchownat": 260, "futimesat": 261, "fchmodat": 268, "utimensat": 280, "setxattr": 188, "lsetxattr": 189,
    "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199, "fchmodat2": 452,
    "setxattrat": 463, "removexattrat": 466, "file_setattr": 469,
}
_NR_CLONE, _NR_CLONE3, _NR_SOCKET, _NR_IOCTL, _NR_FCNTL = 56, 435, 41, 16, 72
_OFF_NR, _OFF_ARCH, _OFF_ARG0, _OFF_ARG1 = 0, 4, 16, 24


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def build_filter(deny_metadata: bool = False, unix_sockets: bool = True) -> bytes:
    """The BPF program as bytes (8 bytes per instruction). ``deny_metadata`` adds :data:`DENY_METADATA`;
    ``unix_sockets=False`` refuses ``socket()`` for every family (``socketpair`` still works): without a
    mount namespace, named UNIX sockets of the host (``/tmp/...``, ``/run/...``) are reachable through
    ``connect``/``sendto``, which Landlock (ABI <= 7) does not control."""
    eperm = RET_ERRNO | errno.EPERM
    prog = [
        _ins(_LD_W_ABS, _OFF_ARCH),
        _ins(_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        _ins(_RET_K, RET_KILL_PROCESS),
        _ins(_LD_W_ABS, _OFF_NR),
        _ins(_JGE_K, 0x40000000, 0, 1),  # x32 ABI
        _ins(_RET_K, RET_KILL_PROCESS),
    ]
    for nr in sorted({**DENY, **(DENY_METADATA if deny_metadata else {})}.values()):
        prog += [_ins(_JEQ_K, nr, 0, 1), _ins(_RET_K, eperm)]
    # clone3's flags sit behind a pointer seccomp cannot read: ENOSYS makes glibc fall back to clone.
    prog += [_ins(_JEQ_K, _NR_CLONE3, 0, 1), _ins(_RET_K, RET_ERRNO | errno.ENOSYS)]
    # Each body below ends in a RET, so a non-matching syscall skips it with A still holding nr.
    prog += [_ins(_JEQ_K, _NR_CLONE, 0, 4), _ins(_LD_W_ABS, _OFF_ARG0),
             _ins(_JSET_K, _CLONE_NEW_MASK, 0, 1), _ins(_RET_K, eperm), _ins(_RET_K, RET_ALLOW)]
    if unix_sockets:
        prog += [_ins(_JEQ_K, _NR_SOCKET, 0, 4), _ins(_LD_W_ABS, _OFF_ARG0),
                 _ins(_JEQ_K, 1, 0, 1), _ins(_RET_K, RET_ALLOW), _ins(_RET_K, RET_ERRNO | errno.EACCES)]
    else:
        prog += [_ins(_JEQ_K, _NR_SOCKET, 0, 1), _ins(_RET_K, RET_ERRNO | errno.EACCES)]
    prog += [_ins(_JEQ_K, _NR_IOCTL, 0, 4), _ins(_LD_W_ABS, _OFF_ARG1),
             _ins(_JEQ_K, _TIOCSTI, 0, 1), _ins(_RET_K, eperm), _ins(_RET_K, RET_ALLOW)]
    n = len(_LOCK_CMDS)
    prog += [_ins(_JEQ_K, _NR_FCNTL, 0, n + 3), _ins(_LD_W_ABS, _OFF_ARG1)]
    for i, cmd in enumerate(_LOCK_CMDS):
        prog.append(_ins(_JEQ_K, cmd, n - i, 0))  # jump to the EPERM after the ALLOW
    prog += [_ins(_RET_K, RET_ALLOW), _ins(_RET_K, eperm)]
    prog.append(_ins(_RET_K, RET_ALLOW))
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Filter:
    """Built once in the fork server; ``install()`` in each child costs one syscall."""

    def __init__(self, deny_metadata: bool = False, unix_sockets: bool = True) -> None:
        code = build_filter(deny_metadata, unix_sockets)
        self._buf = ctypes.create_string_buffer(code, len(code))
        self._prog = _SockFprog(len(code) // 8, ctypes.addressof(self._buf))
        self._libc = ctypes.CDLL(None, use_errno=True)

    def install(self) -> None:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        # seccomp(SECCOMP_SET_MODE_FILTER=1, flags=0, prog)
        if self._libc.syscall(ctypes.c_long(317), ctypes.c_uint(1), ctypes.c_uint(0), ctypes.byref(self._prog)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"seccomp: {os.strerror(err)}")


def supported() -> bool:
    """Whether this machine can take the filter (its syscall numbers and audit arch are x86_64's)."""
    return os.uname().machine == "x86_64"
