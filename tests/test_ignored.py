"""What is passed over where a template or stylesheet file could be is said, not silent.

A symlink, a FIFO, a folder named like a file, a name mybb-sync never writes (``pct%2.html``,
a newline, bytes that are not UTF-8): one log line each and an "ignored" entry in ``status``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mybb_sync.config import Database
from mybb_sync.files import Root
from mybb_sync.layout import Found, why_ignored
from mybb_sync.offline import offline_status
from mybb_sync.tree import walk_tree

from service_helpers import cli, db_url, running_service, tpath, write

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite")]  # nothing here depends on the engine

SET_FOLDER = tpath("x").rsplit("/", 1)[0]  # the set's "ungrouped" folder, as the export makes it


def ignored(root: Path) -> dict[str, str]:
    return {p["path"]: p["detail"] for p in offline_status(root)["problems"] if p["kind"] == "ignored"}


# -- the rule (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "found", "why"),
    [
        ("template_sets/S/G/x.html", Found.SYMLINK, "is a symlink (never followed)"),
        ("styles/T/a.css", Found.OTHER, "is not a regular file (a FIFO, socket or device)"),
        ("global_templates/x.html", Found.DIR, "is a folder where a file belongs"),
        ("template_sets/S/G/\udcff.html", Found.FILE, "its name is not valid UTF-8"),
    ],
)
def test_what_is_passed_over_says_why(path: str, found: Found, why: str) -> None:
    assert why_ignored(path, found, ".tmp") == why


def test_a_name_mybb_sync_never_writes_is_shown_as_it_would_be_spelt() -> None:
    why = why_ignored("template_sets/S/G/pct%2.html", Found.FILE, ".tmp")
    assert why is not None and why.endswith("template_sets/S/G/pct%252.html)")
    why = why_ignored("global_templates/a\nb.html", Found.FILE, ".tmp")
    assert why is not None and why.endswith("global_templates/a%0Ab.html)")


@pytest.mark.parametrize(
    "path",
    [
        "template_sets/S/G/footer.html",  # synced
        "template_sets/S/G/README.md",  # no template: quietly left alone
        "template_sets/S/G/.footer.html.swp",  # an editor's scratch file
        "template_sets/S/G/footer.html.tmp",  # our own temp name
        "notes.txt",  # not where a template or stylesheet could be
        "template_sets/S/README.md",
    ],
)
def test_what_is_synced_or_no_concern_is_not_reported(path: str) -> None:
    assert why_ignored(path, Found.FILE, ".tmp") is None


# -- the service ---------------------------------------------------------------------------


async def test_a_new_symlink_fifo_and_folder_are_each_said_once_and_listed(
    board: Database, root: Path, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere.html"
    target.write_text("<p>outside</p>")
    async with running_service(board, root) as svc:
        mark = svc.log.mark()
        os.symlink(target, root / SET_FOLDER / "linked.html")
        os.mkfifo(root / SET_FOLDER / "piped.html")
        (root / SET_FOLDER / "folder.html").mkdir()
        for name, why in (
            ("linked.html", "symlink"),
            ("piped.html", "not a regular file"),
            ("folder.html", "a folder"),
        ):
            line = await svc.log.wait_for(
                lambda line, n=name: line.startswith(f"ignored {SET_FOLDER}/{n}:"), since=mark
            )
            assert why in line
        await svc.handle.rescan()
        await svc.barrier()
        listed = ignored(root)
        assert {f"{SET_FOLDER}/{n}" for n in ("linked.html", "piped.html", "folder.html")} <= set(listed), listed
        for name in ("linked.html", "piped.html", "folder.html"):  # said once, not at every rescan
            assert sum(line.startswith(f"ignored {SET_FOLDER}/{name}:") for line in svc.log.since(mark)) == 1
    assert target.read_text() == "<p>outside</p>"


async def test_names_mybb_sync_never_writes_are_said_with_their_spelling(board: Database, root: Path) -> None:
    async with running_service(board, root) as svc:
        mark = svc.log.mark()
        write(root / SET_FOLDER / "pct%2.html", "<p>percent</p>")
        write(root / SET_FOLDER / "new\nline.html", "<p>newline</p>")
        fd = os.open(os.fsencode(root / SET_FOLDER) + b"/caf\xe9.html", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"<p>latin-1 name</p>")
        os.close(fd)
        line = await svc.log.wait_for(lambda line: line.startswith(f"ignored {SET_FOLDER}/pct%2.html:"), since=mark)
        assert "pct%252.html" in line
        await svc.log.wait_for(lambda line: line.startswith(f"ignored {SET_FOLDER}/new\nline.html:"), since=mark)
        await svc.log.wait_for(lambda line: "not valid UTF-8" in line, since=mark)
        await svc.barrier()
    assert f"{SET_FOLDER}/pct%2.html" in ignored(root)


async def test_what_was_made_while_stopped_is_said_at_start_and_cleared_once_gone(
    board: Database, root: Path, tmp_path: Path
) -> None:
    async with running_service(board, root):
        pass
    link = root / SET_FOLDER / "linked.html"
    os.symlink(tmp_path, link)
    async with running_service(board, root) as svc:
        assert any(line.startswith(f"ignored {SET_FOLDER}/linked.html: is a symlink") for line in svc.log.lines)
        assert f"{SET_FOLDER}/linked.html" in ignored(root)
        link.unlink()
        await svc.handle.rescan()
        assert f"{SET_FOLDER}/linked.html" not in ignored(root)


async def test_export_lists_what_it_passed_over(board: Database, root: Path, tmp_path: Path) -> None:
    await cli("export", "--db", db_url(board), "--root", str(root), cwd=tmp_path)
    os.mkfifo(root / SET_FOLDER / "piped.html")
    result = await cli("export", "--json", "--db", db_url(board), "--root", str(root), cwd=tmp_path)
    report = json.loads(result.stdout)
    assert report["ignored"] == {f"{SET_FOLDER}/piped.html": "is not a regular file (a FIFO, socket or device)"}


def test_a_walk_told_the_synced_paths_finds_and_passes_over_the_same(tmp_path: Path) -> None:
    """The export's orphan walk takes files at paths its rows were met at without judging their
    names again: what it lists, and what it passes over with why, is what a plain walk says."""
    folder = tmp_path / "template_sets" / "S"
    (folder / "ungrouped").mkdir(parents=True)
    for name in ("a.html", "b.html", "stray.html", "pct%2.html", ".hidden.html", "x.html~"):
        (folder / "ungrouped" / name).write_text("x")
    (folder / "ungrouped" / "dir.html").mkdir()
    os.symlink(folder / "ungrouped" / "a.html", folder / "ungrouped" / "link.html")
    root = Root(tmp_path)
    plain = walk_tree(root, "template_sets")
    told = walk_tree(root, "template_sets", {"template_sets/S/ungrouped/a.html", "template_sets/S/ungrouped/b.html"})
    assert sorted(told.files) == sorted(plain.files) and "template_sets/S/ungrouped/stray.html" in told.files
    assert told.ignored == plain.ignored and len(plain.ignored) >= 3
