"""A seccomp filter for the sandbox, as the classic-BPF program bubblewrap loads with `--seccomp FD`.

Defence in depth behind the namespaces and the unprivileged uid: system calls that only serve to attack the
kernel or to leave the sandbox (ptrace, mount, new namespaces, kernel modules, keyrings, bpf, io_uring, ...)
fail with EPERM, sockets other than AF_UNIX fail with EAFNOSUPPORT, and a system call from a foreign ABI
(32-bit or x32 entry points on x86_64) kills the process. Built by hand (no libseccomp binding needed); the
numbers are the kernel's, per architecture.
"""

import errno
import platform
import struct

# Per architecture: the AUDIT_ARCH value, socket, clone, and the numbers to refuse.
_DENIED = ("ptrace", "process_vm_readv", "process_vm_writev", "perf_event_open", "bpf", "userfaultfd", "keyctl",
           "add_key", "request_key", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "kexec_load",
           "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "syslog",
           "acct", "quotactl", "lookup_dcookie", "io_uring_setup", "io_uring_enter", "io_uring_register",
           "open_by_handle_at", "name_to_handle_at", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
           "mount_setattr")
_NUMBERS = {
    "x86_64": (0xC000003E, dict(zip(("socket", "clone", "clone3") + _DENIED, (
        41, 56, 435, 101, 310, 311, 298, 321, 323, 250, 248, 249, 165, 166, 155, 161, 272, 308, 246, 320, 175, 313,
        176, 169, 167, 168, 103, 163, 179, 212, 425, 426, 427, 304, 303, 428, 429, 430, 431, 432, 442))), True),
    "aarch64": (0xC00000B7, dict(zip(("socket", "clone", "clone3") + _DENIED, (
        198, 220, 435, 117, 270, 271, 241, 280, 282, 219, 217, 218, 40, 39, 41, 51, 97, 268, 104, 294, 105, 273,
        106, 142, 224, 225, 116, 89, 60, 18, 425, 426, 427, 265, 264, 428, 429, 430, 431, 432, 442))), False),
}

# read(2), which the host looks for in /proc/<pid>/syscall to tell that an interpreter is idle.
_READ = {"x86_64": 0, "aarch64": 63}

_LD_ABS_W, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_KILL_PROCESS, _ALLOW, _ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
_ARCH_OFFSET, _NR_OFFSET, _ARG0_OFFSET = 4, 0, 16
_AF_UNIX = 1
_X32_BIT = 0x40000000
# clone() flags that create namespaces: an unprivileged process may still make a user namespace with them.
_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def supported() -> bool:
    return platform.machine() in _NUMBERS


def read_number() -> int | None:
    return _READ.get(platform.machine())


def program() -> bytes:
    """The filter for this machine's architecture (see `supported()`)."""
    arch, nr, x86 = _NUMBERS[platform.machine()]
    out = [_ins(_LD_ABS_W, _ARCH_OFFSET), _ins(_JEQ, arch, jt=1), _ins(_RET, _KILL_PROCESS), _ins(_LD_ABS_W, _NR_OFFSET)]
    if x86:
        out += [_ins(_JGE, _X32_BIT, jf=1), _ins(_RET, _KILL_PROCESS)]
    # socket(family, ...): only AF_UNIX. Every branch of this block returns, so it may clobber the accumulator.
    out += [_ins(_JEQ, nr["socket"], jf=4), _ins(_LD_ABS_W, _ARG0_OFFSET), _ins(_JEQ, _AF_UNIX, jf=1),
            _ins(_RET, _ALLOW), _ins(_RET, _ERRNO | errno.EAFNOSUPPORT)]
    # clone(flags, ...): no new namespaces. clone3 passes flags in memory the filter cannot read: ENOSYS makes
    # the C library fall back to clone.
    out += [_ins(_JEQ, nr["clone"], jf=4), _ins(_LD_ABS_W, _ARG0_OFFSET), _ins(_JSET, _NAMESPACE_FLAGS, jf=1),
            _ins(_RET, _ERRNO | errno.EPERM), _ins(_RET, _ALLOW)]
    out += [_ins(_JEQ, nr["clone3"], jf=1), _ins(_RET, _ERRNO | errno.ENOSYS)]
    for name in _DENIED:
        out += [_ins(_JEQ, nr[name], jf=1), _ins(_RET, _ERRNO | errno.EPERM)]
    out.append(_ins(_RET, _ALLOW))
    return b"".join(out)
