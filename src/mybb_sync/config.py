"""Settings: command-line flags > environment (``MYBB_SYNC_*``) > TOML file.

The database may also come from the forum's own ``inc/config.php``, read
without PHP. Passwords never appear in a ``repr``, a log line or an error.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from .errors import ConfigError

DEFAULT_CONFIG_FILE = "mybb-sync.toml"
ENV_PREFIX = "MYBB_SYNC_"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_]{0,30}$")
_CHARSETS = frozenset({"utf8mb4", "utf8", "utf8mb3", "latin1"})


def validate_prefix(prefix: str) -> str:
    """The table prefix is interpolated into SQL, so it must be plain."""
    if not _PREFIX_RE.fullmatch(prefix):
        raise ConfigError(f"invalid table prefix {prefix!r}: use at most 30 of A-Z a-z 0-9 _")
    return prefix


@dataclass(frozen=True)
class Database:
    """Where the forum's database is. ``password`` is hidden from ``repr``."""

    scheme: Literal["mysql", "postgresql", "sqlite"]
    host: str = "localhost"
    port: int = 3306  # PostgreSQL's boards: 5432
    user: str = "root"
    password: str = field(default="", repr=False)
    name: str = ""
    unix_socket: str | None = None  # PostgreSQL: the directory of the server's socket
    path: Path | None = None
    charset: str = "utf8mb4"

    @classmethod
    def parse(cls, url: str) -> Database:
        """Read ``mysql://user:pass@host:port/db[?unix_socket=..&charset=..]``,
        ``postgresql://user:pass@host:port/db[?host=/socket/dir]`` or ``sqlite:///path``."""
        if not isinstance(url, str):
            raise ConfigError("invalid --db URL: expected text such as mysql://user:password@host/dbname")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ConfigError("invalid --db URL (expected mysql://user:password@host:port/dbname)") from None
        if parts.scheme == "sqlite":
            path = unquote(parts.path)
            if not path or path == "/":
                raise ConfigError("invalid --db URL: sqlite:///path/to/forum.sqlite needs a path")
            return cls(scheme="sqlite", path=Path(path))
        postgres = parts.scheme in ("postgresql", "postgres")
        if parts.scheme not in ("mysql", "mariadb", "mysqli") and not postgres:
            raise ConfigError(
                f"unsupported database scheme {parts.scheme!r} in --db (use mysql://, postgresql:// or sqlite:///)"
            )
        if not parts.netloc or "/" in parts.path.lstrip("/"):
            # e.g. "mysql:user:pw@host/db" or an unencoded "/" in the password:
            # never let part of the credentials become the database name.
            raise ConfigError("invalid --db URL (expected mysql://user:password@host:port/dbname)")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ConfigError("invalid --db URL: no database name (mysql://user:password@host:port/dbname)")
        if postgres:
            return cls(
                scheme="postgresql",
                host=parts.hostname or "localhost",
                port=port or 5432,
                user=unquote(parts.username or "postgres"),
                password=unquote(parts.password or ""),
                name=name,
                unix_socket=query.get("host"),
            )
        charset = query.get("charset", "utf8mb4")
        if charset not in _CHARSETS:
            raise ConfigError(f"unsupported charset {charset!r} in --db")
        return cls(
            scheme="mysql",
            host=parts.hostname or "localhost",
            port=port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            name=name,
            unix_socket=query.get("unix_socket"),
            charset=charset,
        )

    def url(self) -> str:
        """A URL that :meth:`parse` reads back to these settings, without the password (what
        the state store may remember)."""
        if self.scheme == "sqlite":
            assert self.path is not None
            return f"sqlite:///{quote(str(self.path.resolve()).lstrip('/'))}"
        if self.scheme == "postgresql":
            query = {"host": self.unix_socket} if self.unix_socket else {}
        else:
            query = {"charset": self.charset} | ({"unix_socket": self.unix_socket} if self.unix_socket else {})
        where = f"{self.scheme}://{quote(self.user, safe='')}@{self.host}:{self.port}/{quote(self.name, safe='')}"
        return where + (f"?{urlencode(query)}" if query else "")

    def redacted(self) -> str:
        """A printable URL with the password replaced."""
        if self.scheme == "sqlite":
            return f"sqlite://{self.path}" if self.path and self.path.is_absolute() else f"sqlite:{self.path}"
        auth = f"{self.user}:***" if self.password else self.user
        key = "host" if self.scheme == "postgresql" else "unix_socket"
        where = f"?{key}={self.unix_socket}" if self.unix_socket else ""
        return f"{self.scheme}://{auth}@{self.host}:{self.port}/{self.name}{where}"


@dataclass(frozen=True)
class Settings:
    """Everything a command needs; ``None`` means not configured."""

    db: Database | None = None
    prefix: str = "mybb_"
    root: Path | None = None
    mybb_root: Path | None = None
    temp_suffix: str = ".tmp"
    on_delete: Literal["ignore", "revert"] = "ignore"
    poll_interval: float = 1.0
    rescan_interval: float | None = None
    log_format: Literal["text", "json"] = "text"
    allow_mass_revert: bool = False  # on_delete = revert: revert mass deletions too, unconfirmed
    delete_grace: float = 2.0  # seconds a deleted set-copy file must stay gone before on_delete = revert acts
    # Whether inotify misses writers of the root (NFS, SMB, FUSE): rescans, and imports once a file held still.
    network_filesystem: Literal["auto", "yes", "no"] = "auto"
    db_password: str | None = field(default=None, repr=False)  # for a --db URL without one (a remembered URL)

    def require_db(self) -> Database:
        if self.db is None:
            raise ConfigError(
                "no database configured: pass --db mysql://user:password@host/dbname (or postgresql://, sqlite:///) or --mybb-root"
            )
        return self.db

    def require_root(self) -> Path:
        if self.root is None:
            raise ConfigError("no sync root configured: pass --root DIR")
        return self.root


# Keys accepted from every source, with the converter each value goes through.
def _positive(value: Any) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be positive")
    return number


def _choice(*allowed: str):  # noqa: ANN202 - tiny local factory
    def convert(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return str(value)

    return convert


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _temp_suffix(value: Any) -> str:
    text = str(value)
    if not re.fullmatch(r"\.[A-Za-z0-9_.-]{1,16}", text):
        raise ValueError("must start with '.' and hold only letters, digits, '_', '-' or '.'")
    if text.endswith((".html", ".css")):
        raise ValueError("must not be an ending of template (.html) or stylesheet (.css) files")
    return text


_CONVERTERS: dict[str, Any] = {
    "db": Database.parse,
    "prefix": validate_prefix,
    "root": lambda v: Path(v).expanduser(),
    "mybb_root": lambda v: Path(v).expanduser(),
    "temp_suffix": _temp_suffix,
    "on_delete": _choice("ignore", "revert"),
    "poll_interval": _positive,
    "rescan_interval": _positive,
    "log_format": _choice("text", "json"),
    "allow_mass_revert": _flag,
    "network_filesystem": _choice("auto", "yes", "no"),
    "delete_grace": _positive,
    "db_password": str,
}
assert set(_CONVERTERS) == {f.name for f in fields(Settings)}


def load_settings(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] = os.environ,
    config_path: Path | None = None,
    cwd: Path | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the three sources, highest first, over ``defaults`` (what the root was set up with);
    then fill the database from ``inc/config.php``."""
    if config_path is None:
        default = (cwd or Path.cwd()) / DEFAULT_CONFIG_FILE
        toml_values = _read_toml(default) if default.is_file() else {}
    else:
        toml_values = _read_toml(config_path)
    env_values = {key: environ[ENV_PREFIX + key.upper()] for key in _CONVERTERS if ENV_PREFIX + key.upper() in environ}
    merged: dict[str, Any] = {}
    for source in (defaults or {}, toml_values, env_values, {k: v for k, v in flags.items() if v is not None}):
        merged.update(source)
    values: dict[str, Any] = {}
    for key, raw in merged.items():
        try:
            values[key] = _CONVERTERS[key](raw)
        except ConfigError:
            raise
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"invalid {key.replace('_', '-')}: {exc}") from None
    settings = Settings(**values)
    if settings.db is None and settings.mybb_root is not None:
        forum = read_forum_config(settings.mybb_root)
        prefix = settings.prefix if "prefix" in merged else forum.prefix
        settings = replace(settings, db=forum.database, prefix=prefix)
    if settings.db is not None and settings.db_password is not None and not settings.db.password:
        settings = replace(settings, db=replace(settings.db, password=settings.db_password))
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    section = data
    if "mybb-sync" in data:
        section = data["mybb-sync"]
        if not isinstance(section, dict):
            raise ConfigError(f"[mybb-sync] in {path} must be a table")
        outside = sorted(k for k in data if k != "mybb-sync")
        if outside:
            raise ConfigError(f"unknown key(s) in {path} outside [mybb-sync]: {', '.join(outside)}")
    values = {str(k).replace("-", "_"): v for k, v in section.items()}
    unknown = sorted(set(values) - set(_CONVERTERS))
    if unknown:
        raise ConfigError(f"unknown key(s) in {path}: {', '.join(unknown)}")
    return values


@dataclass(frozen=True)
class ForumConfig:
    database: Database
    prefix: str


# $config['database']['key'] = 'value';  (also ['write']['key'] and ['write'][0]['key'])
_PHP_ASSIGN = re.compile(
    r"""\$config\s*\[\s*['"]database['"]\s*\]((?:\s*\[\s*(?:'[^']*'|"[^"]*"|\d+)\s*\])+)\s*=\s*"""
    r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+|true|false|null)\s*;""",
    re.IGNORECASE,
)
_PHP_KEY = re.compile(r"""\[\s*(?:'([^']*)'|"([^"]*)"|(\d+))\s*\]""")
# A string literal (kept) or a comment (dropped): commented-out settings are not settings.
_PHP_STRING_OR_COMMENT = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|//[^\n]*|\#[^\n]*|/\*.*?\*/""", re.DOTALL)
# Double-quoted escapes; others (octal, \x, \u{}) keep their backslash here.
_PHP_DQ_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "v": "\v", "e": "\x1b", "f": "\f"}


def _php_literal(token: str) -> str:
    if token[0] == "'":
        return re.sub(r"\\([\\'])", r"\1", token[1:-1])
    if token[0] == '"':
        return re.sub(r'\\([\\$"nrtvef])', lambda m: _PHP_DQ_ESCAPES.get(m.group(1), m.group(1)), token[1:-1])
    return token


def parse_forum_config(php: str) -> dict[tuple[str, ...], str]:
    """The ``$config['database'][...]`` assignments of a MyBB ``inc/config.php``, keyed by path."""
    found: dict[tuple[str, ...], str] = {}
    php = _PHP_STRING_OR_COMMENT.sub(lambda m: m.group(1) or " ", php)
    for match in _PHP_ASSIGN.finditer(php):
        keys = tuple(next(g for g in m.groups() if g is not None) for m in _PHP_KEY.finditer(match.group(1)))
        found[keys] = _php_literal(match.group(2))
    return found


def _first_connection(assignments: Mapping[tuple[str, ...], str], head: tuple[str, ...]) -> dict[str, str]:
    """The settings of the connection at ``head``, or of the first one of a list there."""
    numbered = sorted({k[len(head)] for k in assignments if k[: len(head)] == head and len(k) == len(head) + 2
                       and k[len(head)].isdigit()}, key=int)  # fmt: skip
    at = head + (numbered[0],) if numbered else head
    return {k[-1]: v for k, v in assignments.items() if k[: len(at)] == at and len(k) == len(at) + 1}


def _write_connection(assignments: Mapping[tuple[str, ...], str]) -> dict[str, str]:
    """The connection writes go through: ``write``; else ``read`` (MyBB then mirrors the
    write link onto it); else the top-level keys; else the first of a plain list."""
    for group in ("write", "read"):
        if any(k[0] == group for k in assignments):
            return _first_connection(assignments, (group,))
    general = {k[0]: v for k, v in assignments.items() if len(k) == 1}
    if "hostname" not in general and any(k[0].isdigit() for k in assignments):
        return _first_connection(assignments, ())
    return general


def forum_database(assignments: Mapping[tuple[str, ...], str]) -> ForumConfig:
    """Build the connection settings; boards with a replica are written through ``write``."""
    conn = _write_connection(assignments)
    general = {k[0]: v for k, v in assignments.items() if len(k) == 1}
    kind = general.get("type", conn.get("type", "mysqli")).lower()
    prefix = validate_prefix(general.get("table_prefix", "mybb_"))
    database = general.get("database", conn.get("database", ""))
    if kind == "sqlite":
        if not database:
            raise ConfigError("inc/config.php: sqlite board without a database file")
        return ForumConfig(Database(scheme="sqlite", path=Path(database)), prefix)
    if kind == "pgsql":
        return ForumConfig(_pgsql_database(conn, general, database), prefix)
    if kind not in ("mysqli", "mysql"):
        raise ConfigError(f"inc/config.php: database type {kind!r} is not supported (mysqli, mysql, pgsql, sqlite)")
    host = conn.get("hostname", general.get("hostname", "localhost"))
    port, socket = 3306, None
    if host.startswith("/"):
        host, socket = "localhost", host
    elif ":" in host:
        host, _, tail = host.rpartition(":")
        if tail.isdigit():
            port = int(tail)
        else:
            socket = tail
    encoding = general.get("encoding", "utf8mb4")
    if encoding not in _CHARSETS:
        raise ConfigError(f"inc/config.php: unsupported encoding {encoding!r}")
    return ForumConfig(
        Database(
            scheme="mysql",
            host=host or "localhost",
            port=port,
            user=conn.get("username", general.get("username", "root")),
            password=conn.get("password", general.get("password", "")),
            name=database,  # MyBB selects the top-level database on every link
            unix_socket=socket,
            charset=encoding,
        ),
        prefix,
    )


def _pgsql_database(conn: Mapping[str, str], general: Mapping[str, str], database: str) -> Database:
    """As MyBB's pgsql driver connects: ``hostname`` may end in ``:port``; an empty one, or a
    directory, is the local socket; no encoding is sent (the database's own, UTF8)."""
    host = conn.get("hostname", general.get("hostname", ""))
    port = 5432
    if ":" in host:
        host, _, tail = host.rpartition(":")
        if not tail.isdigit():
            raise ConfigError(f"inc/config.php: invalid PostgreSQL port {tail!r}")
        port = int(tail)
    socket = host if host.startswith("/") else "/var/run/postgresql" if not host else None
    return Database(
        scheme="postgresql",
        host="localhost" if socket else host,
        port=port,
        user=conn.get("username", general.get("username", "postgres")),
        password=conn.get("password", general.get("password", "")),
        name=database,
        unix_socket=socket,
    )


def read_forum_config(mybb_root: Path) -> ForumConfig:
    """Read the database settings from ``<mybb_root>/inc/config.php``."""
    path = mybb_root / "inc" / "config.php"
    try:
        php = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    assignments = parse_forum_config(php)
    if not assignments:
        raise ConfigError(f"{path} holds no $config['database'] settings")
    return forum_database(assignments)
