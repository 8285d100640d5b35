"""Who the embedded PostgreSQL runs as, and what that user must be able to reach.

PostgreSQL refuses to run as root. As root, the server runs as the owner of an existing data directory,
or else as a system user `paygate` (created on first use; `nobody` if that fails). That user then needs
search permission (o+x, never read or write) on the directories leading to the wheel's binaries and to
PAYGATE_HOME, and read access to the binaries themselves. Nothing here changes anything when paygate
does not run as root: the server then runs as the current user.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SERVICE_USER = "paygate"


@dataclass(frozen=True)
class Account:
    """Who the PostgreSQL processes run as: uid None means the current user."""

    uid: int | None = None
    gid: int | None = None

    def chown(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


def server_account(pgdata: Path) -> Account:
    if os.geteuid() != 0:
        return Account()
    if pgdata.exists():
        st = pgdata.stat()
        if st.st_uid != 0:
            return Account(st.st_uid, st.st_gid)
    entry = _ensure_service_user()
    return Account(entry.pw_uid, entry.pw_gid)


def grant_access(account: Account, bin_dir: Path, home: Path) -> None:
    """The server's user must reach the binaries and the data directory: grant search (o+x) only.

    o+x on an ancestor lets any local user traverse it, not list or read it; the data directory itself
    stays 0700 (initdb's), and the superuser password file stays 0600 and the invoking user's (auth.py)."""
    if account.uid is None:
        return
    install = bin_dir.parent
    if not os.stat(bin_dir / "postgres").st_mode & stat.S_IXOTH:
        # a restrictive umask at install time: make the install readable, as the wheel intends
        for root, dirs, files in os.walk(install):
            for name in dirs + files:
                p = os.path.join(root, name)
                mode = os.stat(p).st_mode
                extra = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
                os.chmod(p, stat.S_IMODE(mode) | extra)
    for directory in (install, home):
        for d in (directory, *directory.parents):
            mode = d.stat().st_mode
            if not mode & stat.S_IXOTH:
                log.warning("granting search permission (o+x) on %s so PostgreSQL can reach it", d)
                d.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _ensure_service_user() -> pwd.struct_passwd:
    """The system user that runs PostgreSQL when paygate runs as root; `nobody` if we cannot create one."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    cmd += ["--shell", "/usr/sbin/nologin", "--comment", "paygate embedded PostgreSQL", SERVICE_USER]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(cmd, check=False, capture_output=True, timeout=30)
    try:
        return pwd.getpwnam(SERVICE_USER)  # created, by us or by a concurrent start
    except KeyError:
        log.warning("could not create the system user %r; running PostgreSQL as 'nobody'", SERVICE_USER)
        return pwd.getpwnam("nobody")
