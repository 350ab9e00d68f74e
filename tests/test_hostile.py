"""Issue 21: a state folder and a control socket no other user can subvert.

Another user (``nobody``, run through ``setpriv``) prepares what the service
would use: the folder of a long root's control socket, the socket itself,
``.mybb-sync``; or the state folder is deleted under a running service; or
``nobody`` runs the CLI against a root it may not enter. Each case ends in
one error line saying what to fix (or in a refusal to talk), never in a
traceback, a forged answer believed, or a second service on the same root.

pytest's own ``tmp_path`` is private to root, so what ``nobody`` must reach
lives in a folder made under /tmp with mode 0755 (``shared``). Waiting is on
process output and exits, bounded by timeouts; nothing sleeps.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

from boards import create_board
from mybb_sync.config import Database, Settings
from mybb_sync.control import SUN_PATH_MAX, call, socket_path
from mybb_sync.errors import MybbSyncError
from mybb_sync.layout import STATE_DIR
from mybb_sync.offline import offline_service, offline_status
from mybb_sync.rootlock import RootLock
from mybb_sync.serve import serve
from mybb_sync.state import State
from mybb_sync.synthetic import Board

from service_helpers import TIMEOUT, LogTap, cli_command, cli_env, cli_service, db_url, running_service

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv(1)"),
]

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
ME = os.geteuid()


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nobody_runs_python() -> None:
    """``nobody`` must be able to run this interpreter and import mybb_sync (the venv and the
    checkout readable by others); say so plainly when it cannot."""
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import mybb_sync"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run {sys.executable} with mybb_sync: {probe.stderr.decode(errors='replace')}")


@pytest.fixture
def shared(nobody_runs_python: None) -> Iterator[Path]:
    """A folder under /tmp that every user may enter (``tmp_path`` is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="mybb-sync-hostile-", dir="/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tmp_env(shared: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /tmp (mode 1777, like it) as TMPDIR, with no XDG_RUNTIME_DIR, for this process
    (``tempfile.gettempdir`` reads TMPDIR again) and the CLI children (``cli_env`` copies the environment)."""
    tmp = shared / "tmp"
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)
    return tmp


@pytest.fixture
def root(shared: Path) -> Path:
    """A sync root owned by root that ``nobody`` may look into (mode 0755), as a web folder is."""
    path = shared / "root"
    path.mkdir(mode=0o755)
    return path


@pytest.fixture
def long_root(shared: Path) -> Path:
    """A root whose ``.mybb-sync/control.sock`` is too long for a unix socket address."""
    path = shared / ("l" * 60) / ("o" * 40) / "root"
    path.mkdir(parents=True)
    for folder in (path.parent.parent, path.parent, path):
        os.chmod(folder, 0o755)
    assert len(os.fsencode(path / STATE_DIR / "control.sock")) > SUN_PATH_MAX
    return path


@pytest.fixture
async def board(tmp_path: Path) -> Database:
    """A small SQLite board (these tests are about folders and sockets, not the database)."""
    return await create_board(Database(scheme="sqlite", path=tmp_path / "forum.sqlite"), Board(masters=20))


# -- helpers -------------------------------------------------------------------------


def as_nobody(code: str, *args: str) -> None:
    """Run Python ``code`` as ``nobody`` to completion."""
    done = subprocess.run([*AS_NOBODY, sys.executable, "-c", code, *args], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


# Listens (as nobody) on each socket path given, or on each socket fd given (bound by another
# user, listened on here), and answers every request with a forged success.
IMPOSTOR = r"""
import json, os, selectors, socket, sys
sel = selectors.DefaultSelector()
for arg in sys.argv[1:]:
    if arg.isdigit():
        listener = socket.socket(fileno=int(arg))
    else:
        os.makedirs(os.path.dirname(arg), exist_ok=True)
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(arg)
        os.chmod(arg, 0o777)
    listener.listen()
    sel.register(listener, selectors.EVENT_READ)
print("listening", flush=True)
forged = {"ok": True, "message": "forged", "status": {"running": True, "paused": False, "root": "forged"}}
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        with conn:
            request = conn.makefile("rb").readline()
            if request:
                print("heard", request.decode(errors="replace").strip(), flush=True)
                conn.sendall(json.dumps(forged).encode() + b"\n")
"""


@asynccontextmanager
async def impostor(*targets: str | int) -> AsyncIterator[LogTap]:
    """``nobody`` listening on ``targets`` (paths, or fds of sockets bound by us) until the block
    ends; the tap holds its lines, ``heard ...`` for each request it got (complete after the block)."""
    fds = [t for t in targets if isinstance(t, int)]
    command = [*AS_NOBODY, sys.executable, "-c", IMPOSTOR, *map(str, targets)]
    tap = LogTap()
    async with await anyio.open_process(command, pass_fds=fds, stdin=subprocess.DEVNULL) as process:

        async def pump() -> None:
            assert process.stdout is not None
            buffer = ""
            async for chunk in TextReceiveStream(process.stdout, errors="replace"):
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    tap.add(line)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                await tap.wait_for(lambda line: line == "listening")
                yield tap
            finally:
                process.terminate()
                with anyio.CancelScope(shield=True), anyio.fail_after(TIMEOUT):
                    await process.wait()


def heard(tap: LogTap) -> list[str]:
    return [line for line in tap.lines if line.startswith("heard")]


async def run_cli(*args: str, cwd: Path, user: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """``mybb-sync ARGS`` to completion, as root or (``user=NOBODY``) as nobody."""
    command = cli_command(*args) if user is None else [*AS_NOBODY, *cli_command(*args)]
    with anyio.fail_after(60):
        return await anyio.run_process(command, cwd=cwd, env=cli_env(), check=False, stdin=subprocess.DEVNULL)


def one_error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The command failed with exit 1 and said why in one line, nothing else."""
    err = result.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert result.returncode == 1, (result.returncode, err, result.stdout)
    assert len(lines) == 1 and lines[0].startswith("mybb-sync: error: "), err
    return lines[0]


async def watch_outcome(db: Database, root: Path, cwd: Path) -> tuple[int | None, list[str]]:
    """Start ``mybb-sync watch``: its exit status and stderr lines if it exits, or None once it
    logs that it is watching (then it is stopped)."""
    command = cli_command("watch", "--db", db_url(db), "--root", str(root))
    lines: list[str] = []
    async with await anyio.open_process(command, cwd=cwd, env=cli_env(), stdin=subprocess.DEVNULL) as process:
        assert process.stderr is not None
        buffer = ""
        with anyio.fail_after(TIMEOUT):
            async for chunk in TextReceiveStream(process.stderr, errors="replace"):
                buffer += chunk
                *new, buffer = buffer.split("\n")
                lines += new
                if any("watching" in line for line in new):
                    process.terminate()
                    await process.wait()
                    return None, lines
            lines += [buffer] if buffer else []
            return await process.wait(), lines


def stopped_with_one_error(code: int | None, lines: Sequence[str]) -> str:
    """A service that ended with exit 1 and one error line (besides its ordinary log lines)."""
    text = "\n".join(lines)
    assert code is not None, "the service started:\n" + text
    assert code == 1 and "Traceback" not in text, text
    errors = [line for line in lines if "error:" in line or " ERROR " in line]
    assert len(errors) == 1 and errors[0].startswith("mybb-sync: error: "), text
    return errors[0]


def digest(root: Path) -> str:
    return hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:20]


# -- 1. the control socket of a root too long for a unix socket address -----------


@pytest.mark.parametrize("xdg", ["unset", "private", "shared"])
async def test_a_long_roots_socket_lives_in_a_private_folder_of_ours(
    board: Database, long_root: Path, tmp_env: Path, shared: Path, xdg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$XDG_RUNTIME_DIR/mybb-sync/ when that is ours and private, else TMPDIR/mybb-sync-<uid>/ (0700)."""
    expected = tmp_env / f"mybb-sync-{ME}"
    if xdg == "private":
        runtime = shared / "run"
        runtime.mkdir(mode=0o700)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        expected = runtime / "mybb-sync"
    elif xdg == "shared":  # others may enter it: not for our sockets
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_env))
    async with running_service(board, long_root, settle=False):
        path = socket_path(long_root)
        assert path == expected / f"{digest(long_root)}.sock"
        folder = os.lstat(expected)
        assert stat.S_ISDIR(folder.st_mode) and folder.st_uid == ME and stat.S_IMODE(folder.st_mode) == 0o700
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        reply = await call(long_root, {"op": "status"})
        assert reply is not None and reply["ok"] and reply["status"]["root"] == str(long_root)
    assert not path.exists()


async def test_an_impostor_on_the_old_predictable_socket_is_never_asked(
    board: Database, long_root: Path, tmp_env: Path
) -> None:
    """nobody listens where the socket of a long root used to be (TMPDIR/mybb-sync-<digest>.sock): it used to
    get the export request and answer 'exported', and nothing was exported. Now it is never asked."""
    async with impostor(str(tmp_env / f"mybb-sync-{digest(long_root)}.sock")) as tap:
        result = await run_cli("export", "--root", str(long_root), "--db", db_url(board), cwd=tmp_env)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"through the running service" not in result.stdout
    assert heard(tap) == []
    assert any((long_root / "template_sets").rglob("*.html"))


async def test_a_socket_folder_made_by_another_user_is_refused_by_the_client(
    board: Database, long_root: Path, tmp_env: Path
) -> None:
    """nobody made TMPDIR/mybb-sync-0/ (and listens in it, and at the old name): one line, nothing asked."""
    State(long_root).close()  # a root synced before
    folder = tmp_env / f"mybb-sync-{ME}"
    targets = [str(folder / f"{digest(long_root)}.sock"), str(tmp_env / f"mybb-sync-{digest(long_root)}.sock")]
    async with impostor(*targets) as tap:
        result = await run_cli("export", "--root", str(long_root), "--db", db_url(board), cwd=tmp_env)
        status = await run_cli("status", "--root", str(long_root), cwd=tmp_env)
    for outcome in (result, status):
        line = one_error_line(outcome)
        assert f"{folder} is owned by user nobody, not by you (root)" in line
    assert heard(tap) == []


async def test_a_socket_folder_made_by_another_user_is_refused_by_the_service(
    board: Database, long_root: Path, tmp_env: Path
) -> None:
    folder = tmp_env / f"mybb-sync-{ME}"
    as_nobody("import os, sys; os.mkdir(sys.argv[1], 0o700)", str(folder))
    line = stopped_with_one_error(*await watch_outcome(board, long_root, tmp_env))
    assert f"{folder} is owned by user nobody, not by you (root)" in line
    assert list(folder.iterdir()) == []


# -- 2. the client trusts only a socket of ours, served by us -------------------------


async def test_a_socket_of_another_user_is_refused(board: Database, root: Path, shared: Path) -> None:
    """A state folder nobody's group may write (0770, group nogroup: allowed) holds a control.sock nobody
    made: its answers used to be believed ('service: running', 'exported')."""
    State(root).close()
    state_dir = root / STATE_DIR
    os.chown(state_dir, ME, NOBODY)
    os.chmod(state_dir, 0o770)
    sock = state_dir / "control.sock"
    async with impostor(str(sock)) as tap:
        status = await run_cli("status", "--root", str(root), cwd=shared)
        export = await run_cli("export", "--root", str(root), "--db", db_url(board), cwd=shared)
    for result in (status, export):
        line = one_error_line(result)
        assert f"{sock} is owned by user nobody, not by you (root): refusing to talk to it" in line
    assert heard(tap) == []


async def test_a_socket_of_ours_served_by_another_user_is_refused(board: Database, root: Path, shared: Path) -> None:
    """The socket file is ours, but the process listening on it is nobody's (SO_PEERCRED)."""
    State(root).close()
    sock = root / STATE_DIR / "control.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock))
    try:
        async with impostor(listener.fileno()) as tap:
            listener.close()  # nobody listens on it now
            status = await run_cli("status", "--root", str(root), cwd=shared)
            export = await run_cli("export", "--root", str(root), "--db", db_url(board), cwd=shared)
    finally:
        listener.close()
    assert os.lstat(sock).st_uid == ME
    for result in (status, export):
        line = one_error_line(result)
        assert str(sock) in line and "user nobody" in line and "refusing to talk to it" in line
    assert heard(tap) == []


# -- 3. .mybb-sync is ours, a real folder, and no one else may write it ---------------

HOSTILE = ["symlink", "nobody's", "writable by others", "a file"]


def make_hostile(kind: str, root: Path, elsewhere: Path) -> str:
    """Put a hostile ``.mybb-sync`` in ``root``; returns what the refusal must say."""
    path = root / STATE_DIR
    if kind == "symlink":
        elsewhere.mkdir(mode=0o700)
        path.symlink_to(elsewhere)
        return f"{path} is a symlink"
    if kind == "nobody's":
        os.chmod(root, 0o777)  # a folder others may write (a shared web folder)
        as_nobody("import os, sys; os.mkdir(sys.argv[1]); os.chmod(sys.argv[1], 0o777)", str(path))
        return f"{path} is owned by user nobody, not by you (root)"
    if kind == "writable by others":
        path.mkdir()
        os.chmod(path, 0o777)
        return f"{path} is writable by other users"
    path.write_text("not a folder")
    return f"{path} is not a folder"


async def enter(point: str, root: Path, board: Database) -> None:
    """One entry point that uses the state folder."""
    settings = Settings(db=board, root=root)
    if point == "State":
        State(root).close()
    elif point == "offline_status":
        offline_status(root)
    elif point == "call":
        await call(root, {"op": "status"})
    elif point == "offline_service":
        async with offline_service(settings):
            pass
    else:
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(TIMEOUT):
                handle = await tg.start(serve, settings)
            handle.stop()


def leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@pytest.mark.parametrize("point", ["State", "offline_status", "call", "offline_service", "serve"])
@pytest.mark.parametrize("kind", HOSTILE)
async def test_a_hostile_state_folder_is_refused_by_every_entry_point(
    board: Database, root: Path, shared: Path, kind: str, point: str
) -> None:
    elsewhere = shared / "elsewhere"
    message = make_hostile(kind, root, elsewhere)
    with pytest.raises((MybbSyncError, BaseExceptionGroup)) as caught:
        await enter(point, root, board)
    error = leaf(caught.value)
    assert isinstance(error, MybbSyncError), repr(error)
    assert message in str(error) and "\n" not in str(error)
    if kind == "symlink":
        assert list(elsewhere.iterdir()) == []  # nothing of ours went outside the root


@pytest.mark.parametrize("kind", HOSTILE)
async def test_a_hostile_state_folder_stops_the_commands_with_one_line(
    board: Database, root: Path, shared: Path, kind: str
) -> None:
    message = make_hostile(kind, root, shared / "elsewhere")
    assert message in stopped_with_one_error(*await watch_outcome(board, root, shared))
    for args in (["status"], ["export", "--db", db_url(board)]):
        assert message in one_error_line(await run_cli(*args, "--root", str(root), cwd=shared))


# -- 4. one service per root, even when the state folder goes away ----------------------

TRY_LOCK = """
import sys
from pathlib import Path
from mybb_sync.rootlock import RootLock
print("locked" if RootLock(Path(sys.argv[1])).acquire() else "refused")
"""


def test_deleting_the_state_folder_frees_no_lock(tmp_path: Path) -> None:
    """The lock was a file in .mybb-sync: deleting the folder let another process lock a new one."""
    lock = RootLock(tmp_path)
    assert lock.acquire()
    try:
        State(tmp_path).close()
        shutil.rmtree(tmp_path / STATE_DIR)
        other = subprocess.run(
            [sys.executable, "-c", TRY_LOCK, str(tmp_path)], capture_output=True, text=True, timeout=60
        )
        assert other.stdout.strip() == "refused", other.stderr
        assert not (tmp_path / STATE_DIR).exists()
    finally:
        lock.release()


async def test_a_service_whose_state_folder_is_deleted_stops_and_no_second_one_starts(
    board: Database, root: Path, shared: Path
) -> None:
    """rm -rf .mybb-sync under a running service: a second service used to start on the same root (and
    both wrote every change). The first is held (SIGSTOP) so that the second tries while it still runs."""
    async with cli_service(board, root, shared) as first:
        first.signal(signal.SIGSTOP)
        try:
            shutil.rmtree(root / STATE_DIR)
            code, lines = await watch_outcome(board, root, shared)
            line = stopped_with_one_error(code, lines)
            assert (
                f"another mybb-sync process is already syncing {root} (pid {first.pid} of user root holds its lock)"
                in line
            )
        finally:
            first.signal(signal.SIGCONT)
        await first.log.wait_for(lambda line: line.startswith("mybb-sync: error: "))
        assert await first.wait(TIMEOUT) == 1
        line = stopped_with_one_error(1, first.log.lines)
        assert line == f"mybb-sync: error: the state folder {root / STATE_DIR} was removed: stopping"


async def test_a_service_whose_state_folder_is_moved_away_stops(board: Database, root: Path, shared: Path) -> None:
    async with cli_service(board, root, shared) as service:
        os.rename(root / STATE_DIR, shared / "moved")
        await service.log.wait_for(lambda line: line.startswith("mybb-sync: error: "))
        assert await service.wait(TIMEOUT) == 1
        line = stopped_with_one_error(1, service.log.lines)
        assert line == f"mybb-sync: error: the state folder {root / STATE_DIR} was moved away: stopping"


HOLD = "import fcntl, os, sys; fcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()"


async def test_a_lock_taken_by_another_user_is_named(board: Database, root: Path, shared: Path) -> None:
    """Whoever may read the root may lock it, keeping services away: the refusal says who does."""
    command = [*AS_NOBODY, sys.executable, "-c", HOLD, str(root)]
    async with await anyio.open_process(command, stdin=subprocess.PIPE) as holder:
        assert holder.stdout is not None
        with anyio.fail_after(TIMEOUT):
            assert (await holder.stdout.receive()).strip() == b"locked"
        line = stopped_with_one_error(*await watch_outcome(board, root, shared))
        assert line.endswith(f"already syncing {root} (pid {holder.pid} of user nobody holds its lock)")


# -- 5. another user's commands: one line saying which path and which user -----------


@pytest.mark.parametrize("args", [["status"], ["pause"], ["export", "--db", "sqlite:///nonexistent/forum.sqlite"]])
@pytest.mark.parametrize("service", ["running", "stopped"])
async def test_another_user_gets_one_line_about_the_state_folder(
    board: Database, root: Path, shared: Path, args: list[str], service: str
) -> None:
    """root's service (or its state) in a root nobody may look into but not enter the state of."""

    async def as_nobody_cli() -> subprocess.CompletedProcess[bytes]:
        return await run_cli(*args, "--root", str(root), cwd=shared, user=NOBODY)

    if service == "running":
        async with running_service(board, root, settle=False):
            result = await as_nobody_cli()
    else:
        State(root).close()
        result = await as_nobody_cli()
    line = one_error_line(result)
    assert f"{root / STATE_DIR} is owned by user root, not by you (nobody)" in line


async def test_another_user_gets_one_line_about_a_root_it_cannot_enter(
    board: Database, root: Path, shared: Path
) -> None:
    State(root).close()
    os.chmod(root, 0o700)
    for args in (["status"], ["export", "--db", "sqlite:///nonexistent/forum.sqlite"]):
        line = one_error_line(await run_cli(*args, "--root", str(root), cwd=shared, user=NOBODY))
        assert str(root) in line and "permission denied" in line and "nobody" in line
