"""The command line's grammar: every subcommand, its flags, its help screen and an example.

Options that say where to work (``--root``, ``--db``, ...) are every command's: they may
come before the subcommand as well as after it (``mybb-sync --root R status``).
"""

from __future__ import annotations

import argparse
import textwrap

from ._version import __version__
from .errors import ConfigError
from .theme_cli import add_theme_parser

EXIT_CODES = """\
exit codes (push, pull, sync, export):
  0  done, or nothing to do
  1  runtime failure (database or disk unavailable, a file not written)
  2  usage or configuration error
  3  something was refused or is in conflict (listed)
  with --dry-run: 0 nothing would change, 4 something would change, 3 something would be refused or conflict"""


class Parser(argparse.ArgumentParser):
    """Usage errors become one ``mybb-sync: error: ...`` line (exit 2), as every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("mybb-sync").strip()
        raise ConfigError(f"{message} (see 'mybb-sync {command + ' ' if command else ''}--help')")


def _where(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes; after the subcommand they only override when given."""
    default = None if top else argparse.SUPPRESS
    g = parser.add_argument_group("where (flags > MYBB_SYNC_* environment > mybb-sync.toml > what the root remembers)")
    g.add_argument("--config", metavar="PATH", default=default, help="TOML settings file (default: ./mybb-sync.toml)")
    g.add_argument(
        "--db",
        metavar="URL",
        default=default,
        help="mysql://user:password@host:port/dbname[?unix_socket=/path] or sqlite:///path",
    )
    g.add_argument("--prefix", metavar="PREFIX", default=default, help="table prefix (default: mybb_)")
    g.add_argument(
        "--root",
        metavar="DIR",
        default=default,
        help="the sync root (default: the folder holding .mybb-sync/, from here upwards)",
    )
    g.add_argument(
        "--mybb-root", metavar="DIR", default=default, help="the forum's install folder (reads inc/config.php)"
    )
    g.add_argument("--temp-suffix", metavar="SUFFIX", default=default, help="suffix of temp files (default: .tmp)")
    g.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS, help="verbose logs and tracebacks")  # fmt: skip


def _command(sub: argparse._SubParsersAction, name: str, summary: str, description: str, example: str) -> Parser:
    parser = sub.add_parser(
        name, help=summary, description=textwrap.dedent(description).strip(),
        epilog="example:\n" + textwrap.indent(textwrap.dedent(example).strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    _where(parser, top=False)
    return parser


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="only these files or folders (relative to the root or here)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME",
        help="only this template set (and the global templates; repeatable)",
    )
    parser.add_argument(
        "--theme", action="append", default=[], metavar="NAME", help="only this theme's stylesheets (repeatable)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="GLOB",
        help="only paths matching (gitignore syntax, relative to the root; repeatable)",
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out paths matching (as a line of .mybb-syncignore; repeatable)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be done; change nothing (database, files, state)"
    )
    parser.add_argument("--json", action="store_true", help="print the plan or report as one JSON document")  # fmt: skip


ONCE = {
    "push": (
        "files to database, once: import every file changed since it was last synced",
        """
        Import every file changed since it was last agreed with the database (or, never
        synced, different from its row) exactly as the running service would: refusals,
        MyBB's security check, stylesheet saves with their cache files. A file whose row
        also changed is a conflict, reported and left alone unless --force (take the file).
        Rows changed in the database are left for 'pull'.
        """,
        "git pull && mybb-sync push --dry-run && mybb-sync push",
    ),
    "pull": (
        "database to files, once: write every row changed since it was last synced",
        """
        Write every template and stylesheet whose row changed since it was last agreed
        (atomically, durably). A file also changed on disk is a conflict, reported and left
        alone unless --force (take the database's). Files changed on disk alone are left for
        'push'. 'export' is this command.
        """,
        "mybb-sync pull --set 'Default Templates' && git add -A && git commit -m 'Admin CP edits'",
    ),
    "sync": (
        "both ways, once: what 'watch' does when it starts, then exit",
        """
        One full two-way reconcile: files changed on disk are imported, rows changed in the
        database are written, both changed is a conflict (settle it with 'mybb-sync resolve').
        """,
        "mybb-sync sync --json | jq .counts",
    ),
}


def build_parser() -> Parser:
    parser = Parser(
        prog="mybb-sync",
        description="Keep a MyBB forum's templates and stylesheets and a folder of files in two-way sync.",
        epilog=EXIT_CODES + "\n\nRun 'mybb-sync COMMAND --help' for a command's options and an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mybb-sync {__version__}")
    _where(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    for name, (summary, description, example) in ONCE.items():
        once = _command(sub, name, summary, description + "\n" + EXIT_CODES, example)
        _selection(once)
        if name != "sync":
            once.add_argument("--force", action="store_true", help="in a conflict, take the " + ("file" if name == "push" else "database's version"))  # fmt: skip
    export = _command(
        sub, "export", "write templates and stylesheets to files (the same as 'pull')",
        "The same as 'pull': write what the database shows into the sync root.\n" + EXIT_CODES,
        "mybb-sync export --db mysql://mybb:secret@localhost/mybb --root ~/forum-look",
    )  # fmt: skip
    _selection(export)
    export.add_argument("--force", action="store_true", help="overwrite files changed on disk (conflicts)")
    export.add_argument("--all", action="store_true", help="every set and theme (the default)")

    watch = _command(
        sub, "watch", "run the two-way sync service (inotify + database)",
        "Run until stopped: a file saved is imported at once, an Admin CP save is written to its file within "
        "the poll interval. SIGHUP rescans; SIGTERM finishes in-flight writes and stops.",
        "mybb-sync watch --mybb-root /var/www/forum --root ~/forum-look",
    )  # fmt: skip
    watch.add_argument(
        "--set", action="append", default=[], metavar="NAME", help="sync only this template set (repeatable)"
    )
    watch.add_argument("--theme", action="append", default=[], metavar="NAME", help="sync only this theme (repeatable)")
    watch.add_argument("--rescan-interval", type=float, metavar="SECONDS", help="also rescan everything this often")
    watch.add_argument("--log-format", choices=("text", "json"), help="log lines as text (default) or JSON")
    watch.add_argument(
        "--on-delete", choices=("ignore", "revert"),
        help="a deleted set-copy file: ignore it (default) or revert the copy",
    )  # fmt: skip
    watch.add_argument("--poll-interval", type=float, metavar="SECONDS", help="how often to look for database edits (default 1)")  # fmt: skip
    watch.add_argument(
        "--allow-mass-revert", action="store_true", default=None,
        help="with --on-delete revert, also revert mass deletions at once: by default more than 5 files deleted "
        "within 2s, or every copy of a set, are held until 'mybb-sync resolve --take disk PATH' confirms each "
        "(a folder gone, or a file replaced by a symlink, FIFO or folder, never reverts anything)",
    )  # fmt: skip
    watch.add_argument(
        "--network-filesystem", choices=("auto", "yes", "no"),
        help="whether the root is on NFS, SMB or FUSE, where inotify misses writers on other machines: rescan "
        "every 30s and import a file only once it held still (default auto: detected)",
    )  # fmt: skip

    status = _command(
        sub, "status", "what the service is doing, or what the state store says offline",
        "Counts, conflicts, refused and ignored files, and the running service's queue, if one runs.",
        "mybb-sync status --json",
    )  # fmt: skip
    status.add_argument("--json", action="store_true", help="print machine-readable status")
    status.add_argument("--outdated", action="store_true", help="list set copies older than their master template")
    for name, text in (
        ("pause", "stop applying changes (they are still recorded)"),
        ("resume", "apply what was recorded while paused"),
        ("rescan", "compare the whole root and database again"),
    ):
        _command(sub, name, text, f"Ask the running service to {text}.", f"mybb-sync {name}")

    diff = _command(
        sub, "diff", "unified diff between files and the database",
        "The database's version against the file's, for each file that differs. Exit 0 when none differs, 1 when any.",
        "mybb-sync diff template_sets/Default\\ Templates/header/header.html",
    )  # fmt: skip
    diff.add_argument("paths", nargs="*", metavar="PATH", help="files to compare (default: everything that differs)")

    _command(
        sub,
        "demo",
        "try it: a synthetic board on SQLite, exported and watched",
        "A MyBB board on SQLite with the default templates and a sync root beside it, watched until Ctrl-C.",
        "mybb-sync demo /tmp/try-mybb-sync",
    ).add_argument("dir", nargs="?", default="mybb-sync-demo", help="where to put the board and files")

    index = _command(
        sub, "index", "the optional index on templates.dateline that keeps polls cheap on large boards",
        "MyBB neither needs nor minds it; MyISAM rewrites the table meanwhile, under a second per 100,000 templates.",
        "mybb-sync index --add",
    )  # fmt: skip
    change = index.add_mutually_exclusive_group()
    change.add_argument("--add", action="store_true", help="add it")
    change.add_argument("--drop", action="store_true", help="remove it again")
    index.add_argument("--json", action="store_true", help="print a machine-readable answer")

    check = _command(
        sub, "check", "list stored templates that fail MyBB's security check (exit 1 if any)",
        "Tools > System Health > Check Templates: every stored template (any set, masters included) that the "
        "Admin CP's check_template() would refuse, with its set and title. Exit 0 when none, 1 when any.",
        "mybb-sync check --json",
    )  # fmt: skip
    check.add_argument("--json", action="store_true", help="print a machine-readable list")

    resolve = _command(
        sub, "resolve", "settle a conflict by taking the file's or the database's version",
        "A conflict (both sides changed) is left alone until settled: take the file (import it) or the "
        "database's version (overwrite the file). PATH as 'status' prints it, or relative to here.",
        "mybb-sync resolve --take disk template_sets/Default\\ Templates/header/header.html",
    )  # fmt: skip
    resolve.add_argument("path", help="the file, inside the sync root")
    resolve.add_argument("--take", required=True, choices=("disk", "db"), help="which side wins")
    add_theme_parser(sub, lambda parser: _where(parser, top=False))
    return parser
