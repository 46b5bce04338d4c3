"""Model-written Python under OS-level isolation: bubblewrap, as user ``nobody``.

Each call runs one child as uid/gid 65534 (``setpriv``; no capabilities, no groups) inside
``bwrap`` with every namespace unshared (no network, its own PIDs — the trainer's
``/proc`` is not there — its own IPC, hostname and cgroup view), a read-only ``/usr`` as the
whole file system besides a private ``/tmp``, ``/dev`` and ``/proc``, an empty environment,
a new session (no terminal to inject into), ``--die-with-parent``, no further user namespaces
(``--disable-userns``) and a seccomp filter (built with libseccomp through ``pyseccomp``, loaded
by bwrap just before the child starts) that answers EPERM to the system calls a sandboxed
test never needs and kernel exploits favour: ptrace and cross-process memory, namespaces and
mounts, keyrings, BPF, perf events, userfaultfd, io_uring, module and kexec loading,
handle-based opens, and the like (``DENIED_SYSCALLS``). Inside, before any
answer code runs, the runner sets resource limits: address space (``memory_mb``), CPU
seconds, file size, open files and processes. The parent kills the whole sandbox at
``timeout`` seconds of wall time: killing bwrap ends its PID namespace, detached
grandchildren included. Standard output and error go to /dev/null, so printing costs the
trainer nothing and proves nothing.

The score is computed here, not read from the child: each test runs in its own forked
process from the answer code, and only a test that ran to its end writes that test's
random nonce to a pipe the parent reads (at most 64 KiB). A test passes when its nonce
arrives; the score is the share of tests that passed, in [0, 1]. What this does not stop:
answer code that digs its own test's nonce out of the runner's memory (frame or ``ctypes``
introspection) can pass that one test; it cannot reach the others' (freed before it runs),
the network, the trainer or any file outside the sandbox.

The interpreter inside is the system's ``/usr/bin/python3`` (standard library only).
``isolation = "unsafe-none"`` runs the same runner in a plain child process — for machines
without bubblewrap, chosen by name in the recipe, and warned about.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass

PYTHON = "/usr/bin/python3"
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "open_by_handle_at", "name_to_handle_at", "reboot", "swapon", "swapoff", "acct", "quotactl",
    "iopl", "ioperm", "settimeofday", "clock_settime", "adjtimex", "syslog", "vhangup", "lookup_dcookie",
)
NOBODY = 65534
RESULT_LIMIT = 64 * 1024

RUNNER = r'''
import json, os, resource, sys
payload = json.loads(sys.stdin.read())
sys.stdin.close()
memory = payload["memory_mb"] * 1024 * 1024
for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, payload["cpu_seconds"]),
                     (resource.RLIMIT_FSIZE, 1024 * 1024), (resource.RLIMIT_CORE, 0),
                     (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_NPROC, payload["processes"])):
    resource.setrlimit(limit, (value, value))
code, tests, nonces, out = payload["code"], payload["tests"], payload["nonces"], payload["fd"]
del payload
for index in range(len(tests)):
    pid = os.fork()
    if pid == 0:
        nonce, test = nonces[index], tests[index]
        del nonces, tests
        try:
            namespace = {"__name__": "__main__"}
            exec(compile(code, "<answer>", "exec"), namespace)
            exec(compile(test, "<test>", "exec"), namespace)
        except BaseException:
            os._exit(1)
        os.write(out, (nonce + "\n").encode())
        os._exit(0)
    os.waitpid(pid, 0)
os._exit(0)
'''


class SandboxUnavailable(RuntimeError):
    """No OS-level isolation on this machine."""


@dataclass(frozen=True)
class Outcome:
    passed: int
    total: int
    timed_out: bool = False

    @property
    def score(self) -> float:
        return min(1.0, max(0.0, self.passed / self.total)) if self.total else 0.0


@functools.cache
def seccomp_program() -> bytes:
    """The BPF program of the filter: allow everything but ``DENIED_SYSCALLS`` (EPERM)."""
    import errno
    import tempfile

    import pyseccomp

    rules = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            rules.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # not a system call on this architecture
    with tempfile.TemporaryFile() as fh:
        rules.export_bpf(fh)
        fh.seek(0)
        return fh.read()


def _seccomp_fd() -> int:
    """A fresh, inheritable fd holding the filter: bwrap reads it to its end, so each child gets its own."""
    fd = os.memfd_create("reasonlab-seccomp", 0)
    os.write(fd, seccomp_program())
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd


def _bwrap_command(seccomp_fd: int) -> list[str]:
    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all", bwrap,
               "--unshare-all", "--die-with-parent", "--new-session", "--clearenv", "--unshare-user",
               "--disable-userns", "--seccomp", str(seccomp_fd),
               "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp"]
    for top in ("bin", "lib", "lib64", "sbin"):  # merged-/usr systems link these into /usr
        if os.path.islink(f"/{top}"):
            command += ["--symlink", os.readlink(f"/{top}"), f"/{top}"]
        elif os.path.isdir(f"/{top}"):
            command += ["--ro-bind", f"/{top}", f"/{top}"]
    if os.path.exists("/etc/ld.so.cache"):
        command += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return command + ["--", PYTHON, "-I", "-S", "-c", RUNNER]


@functools.cache
def why_unavailable() -> str | None:
    """None when bubblewrap isolation works here; else what is missing."""
    missing = [name for name in ("bwrap", "setpriv") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not found (apt-get install bubblewrap util-linux)"
    if not os.access(PYTHON, os.X_OK):
        return f"{PYTHON} not found (apt-get install python3-minimal)"
    try:
        seccomp_program()
    except (ImportError, OSError) as exc:
        return f"no seccomp filter: {exc} (pip install pyseccomp; apt-get install libseccomp2)"
    try:
        probe = run("x = 1", ["assert x == 1"], timeout=20.0, isolation="bubblewrap", check=False)
    except OSError as exc:
        return f"bubblewrap failed to start: {exc}"
    return None if probe.passed == 1 else "bubblewrap is installed but could not run a child (user namespaces off?)"


def run(code: str, tests: list[str], timeout: float = 5.0, memory_mb: int = 512, isolation: str = "bubblewrap",
        check: bool = True) -> Outcome:
    """Run ``code`` and then each test in a fresh fork of it; count the tests that ran to their end."""
    if not tests:
        return Outcome(0, 0)
    extra_fds: tuple[int, ...] = ()
    if isolation == "bubblewrap":
        if check and why_unavailable():
            raise SandboxUnavailable(why_unavailable())
        extra_fds = (_seccomp_fd(),)
        command = _bwrap_command(extra_fds[0])
    elif isolation == "unsafe-none":
        command = [PYTHON if os.access(PYTHON, os.X_OK) else shutil.which("python3"), "-I", "-S", "-c", RUNNER]
    else:
        raise ValueError(f'isolation must be "bubblewrap" or "unsafe-none", got {isolation!r}')
    nonces = [secrets.token_hex(16) for _ in tests]
    read_end, write_end = os.pipe()
    payload = json.dumps({"code": code, "tests": tests, "nonces": nonces, "fd": write_end, "memory_mb": memory_mb,
                          "cpu_seconds": max(1, int(timeout) + 1), "processes": 32})
    try:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                pass_fds=(write_end, *extra_fds), env={}, cwd="/tmp", start_new_session=True)
    finally:
        for fd in (write_end, *extra_fds):
            os.close(fd)
    received = bytearray()
    reader = threading.Thread(target=_read_bounded, args=(read_end, received), daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.stdin.write(payload.encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(proc)
    reader.join(timeout=2.0)
    lines = set(bytes(received).decode(errors="replace").split("\n"))
    return Outcome(sum(1 for nonce in nonces if nonce in lines), len(tests), timed_out)


def _read_bounded(fd: int, into: bytearray) -> None:
    try:
        while len(into) < RESULT_LIMIT:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            into.extend(chunk[: RESULT_LIMIT - len(into)])
    finally:
        os.close(fd)


def _kill_group(proc: subprocess.Popen) -> None:
    """The child's whole session: with bubblewrap that ends its PID namespace, and every process in it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
