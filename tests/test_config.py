"""Specification of ``config``: flags > environment > TOML, DSNs, and the forum's inc/config.php.

``mybb_installer_config`` reproduces, byte for byte, the ``$configdata`` that
MyBB 1.8's installer (``install/index.php``, ``create_tables()``) writes to
``inc/config.php``: only the password goes through ``addslashes``, every
value sits in single quotes, and the encoding line is commented out for
engines without charsets (SQLite, PostgreSQL).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mybb_sync.config import (
    Database,
    Settings,
    forum_database,
    load_settings,
    parse_forum_config,
    read_forum_config,
    validate_prefix,
)
from mybb_sync.errors import ConfigError

SECRET = "Zq7SecretPw"  # distinctive: must never show up in any text we produce


def php_addslashes(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"').replace("\x00", "\\0")


def mybb_installer_config(
    *,
    dbengine: str = "mysqli",
    dbname: str = "mybb",
    tableprefix: str = "mybb_",
    dbhost: str = "localhost",
    dbuser: str = "forum",
    dbpass: str = SECRET,
    encoding: str = "utf8mb4",
    charsets: bool = True,
) -> str:
    """inc/config.php exactly as MyBB 1.8's installer writes it."""
    if charsets:
        db_encoding = f"$config['database']['encoding'] = '{encoding}';"
    else:
        db_encoding = f"// $config['database']['encoding'] = '{encoding}';"
    dbpass = php_addslashes(dbpass)
    return f"""<?php
/**
 * Database configuration
 *
 * Please see the MyBB Docs for advanced
 * database configuration for larger installations
 * http://docs.mybb.com/
 */

$config['database']['type'] = '{dbengine}';
$config['database']['database'] = '{dbname}';
$config['database']['table_prefix'] = '{tableprefix}';

$config['database']['hostname'] = '{dbhost}';
$config['database']['username'] = '{dbuser}';
$config['database']['password'] = '{dbpass}';

/**
 * Admin CP directory
 *  For security reasons, it is recommended you
 *  rename your Admin CP directory. You then need
 *  to adjust the value below to point to the
 *  new directory.
 */

$config['admin_dir'] = 'admin';

/**
 * Hide all Admin CP links
 *  If you wish to hide all Admin CP links
 *  on the front end of the board after
 *  renaming your Admin CP directory, set this
 *  to 1.
 */

$config['hide_admin_links'] = 0;

/**
 * Data-cache configuration
 *  The data cache is a temporary cache
 *  of the most commonly accessed data in MyBB.
 *  By default, the database is used to store this data.
 *
 *  If you wish to use the file system (cache/ directory), MemCache (or MemCached), xcache, APC, or eAccelerator
 *  you can change the value below to 'files', 'memcache', 'memcached', 'xcache', 'apc' or 'eaccelerator' from 'db'.
 */

$config['cache_store'] = 'db';

/**
 * Memcache configuration
 *  If you are using memcache or memcached as your
 *  data-cache, you need to configure the hostname
 *  and port of your memcache server below.
 *
 * If not using memcache, ignore this section.
 */

$config['memcache']['host'] = 'localhost';
$config['memcache']['port'] = 11211;

/**
 * Super Administrators
 *  A comma separated list of user IDs who cannot
 *  be edited, deleted or banned in the Admin CP.
 *  The administrator permissions for these users
 *  cannot be altered either.
 */

$config['super_admins'] = '1';

/**
 * Database Encoding
 *  If you wish to set an encoding for MyBB uncomment
 *  the line below (if it isn't already) and change
 *  the current value to the mysql charset:
 *  http://dev.mysql.com/doc/refman/5.1/en/charset-mysql.html
 */

{db_encoding}

/**
 * Automatic Log Pruning
 *  The MyBB task system can automatically prune
 *  various log files created by MyBB.
 *  To enable this functionality for the logs below, set the
 *  the number of days before each log should be pruned.
 *  If you set the value to 0, the logs will not be pruned.
 */

$config['log_pruning'] = array(
\t'admin_logs' => 365, // Administrator logs
\t'mod_logs' => 365, // Moderator logs
\t'task_logs' => 30, // Scheduled task logs
\t'mail_logs' => 180, // Mail error logs
\t'user_mail_logs' => 180, // User mail logs
\t'promotion_logs' => 180 // Promotion logs
);

"""


# A board with a replica: the connection settings live under ['read'] and ['write'].
REPLICA_SINGLE = f"""<?php
$config['database']['type'] = 'mysqli';
$config['database']['database'] = 'mybb';
$config['database']['table_prefix'] = 'forum_';
$config['database']['encoding'] = 'utf8mb4';

$config['database']['read']['hostname'] = 'replica.internal';
$config['database']['read']['username'] = 'reader';
$config['database']['read']['password'] = 'readpw';

$config['database']['write']['hostname'] = 'primary.internal:3307';
$config['database']['write']['username'] = 'writer';
$config['database']['write']['password'] = '{SECRET}';
"""

REPLICA_LIST = f"""<?php
$config['database']['type'] = 'mysqli';
$config['database']['database'] = 'mybb';
$config['database']['table_prefix'] = 'forum_';
$config['database']['encoding'] = 'utf8';

$config['database']['read'][0]['hostname'] = 'replica1.internal';
$config['database']['read'][0]['username'] = 'reader';
$config['database']['read'][0]['password'] = 'readpw';
$config['database']['read'][1]['hostname'] = 'replica2.internal';
$config['database']['read'][1]['username'] = 'reader';
$config['database']['read'][1]['password'] = 'readpw';

$config['database']['write'][0]['hostname'] = 'primary.internal';
$config['database']['write'][0]['username'] = 'writer';
$config['database']['write'][0]['password'] = '{SECRET}';
$config['database']['write'][1]['hostname'] = 'primary2.internal';
$config['database']['write'][1]['username'] = 'writer2';
$config['database']['write'][1]['password'] = 'other';
"""


def forum(php: str) -> Database:
    return forum_database(parse_forum_config(php)).database


def forum_prefix(php: str) -> str:
    return forum_database(parse_forum_config(php)).prefix


@pytest.fixture
def mybb_root(tmp_path: Path) -> Path:
    """A forum folder whose inc/config.php is what the installer wrote."""
    root = tmp_path / "forum"
    (root / "inc").mkdir(parents=True)
    (root / "inc" / "config.php").write_text(mybb_installer_config(tableprefix="board_"), encoding="utf-8")
    return root


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """An empty working directory (no mybb-sync.toml) for load_settings."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def load(flags: dict | None = None, env: dict | None = None, *, cwd: Path, config_path: Path | None = None) -> Settings:
    return load_settings(flags or {}, env or {}, config_path=config_path, cwd=cwd)


# --- DSN parsing ---------------------------------------------------------------------


def test_a_mysql_url_gives_every_connection_part() -> None:
    db = Database.parse("mysql://user:pa%40ss@host:3307/db?unix_socket=/run/x.sock")
    assert (db.scheme, db.user, db.password, db.host, db.port, db.name, db.unix_socket) == (
        "mysql", "user", "pa@ss", "host", 3307, "db", "/run/x.sock",
    )  # fmt: skip


def test_a_mysql_url_defaults_to_port_3306_utf8mb4_and_no_socket() -> None:
    db = Database.parse("mysql://forum@db.example/mybb")
    assert (db.port, db.charset, db.unix_socket, db.password) == (3306, "utf8mb4", None, "")


def test_the_charset_comes_from_the_query_string() -> None:
    assert Database.parse("mysql://u:p@h/db?unix_socket=/s&charset=utf8").charset == "utf8"


def test_an_unsupported_charset_is_refused() -> None:
    with pytest.raises(ConfigError, match="charset"):
        Database.parse("mysql://u:p@h/db?charset=koi8r")


def test_mariadb_and_mysqli_schemes_mean_mysql() -> None:
    assert Database.parse("mariadb://u:p@h/db").scheme == "mysql"
    assert Database.parse("mysqli://u:p@h/db").scheme == "mysql"


def test_percent_encoded_user_and_database_name_are_decoded() -> None:
    db = Database.parse("mysql://my%20user:p@h/my%2Ddb")
    assert (db.user, db.name) == ("my user", "my-db")


def test_an_unencoded_at_sign_in_the_password_is_kept() -> None:
    db = Database.parse("mysql://user:pa@ss@host/db")
    assert (db.user, db.password, db.host) == ("user", "pa@ss", "host")


def test_a_colon_in_the_password_is_kept() -> None:
    assert Database.parse("mysql://user:pa:ss@host/db").password == "pa:ss"


def test_a_postgresql_url_gives_every_connection_part() -> None:
    db = Database.parse("postgresql://user:pa%40ss@host:5433/db")
    assert (db.scheme, db.user, db.password, db.host, db.port, db.name, db.unix_socket) == (
        "postgresql", "user", "pa@ss", "host", 5433, "db", None,
    )  # fmt: skip


def test_a_postgres_url_defaults_to_port_5432_and_may_name_a_socket_directory() -> None:
    db = Database.parse("postgres://forum@localhost/mybb?host=/run/postgresql")
    assert (db.scheme, db.port, db.unix_socket) == ("postgresql", 5432, "/run/postgresql")


def test_redacted_postgresql_url_hides_the_password() -> None:
    db = Database.parse(f"postgresql://forum:{SECRET}@h/mybb?host=/run/postgresql")
    assert db.redacted() == "postgresql://forum:***@h:5432/mybb?host=/run/postgresql"


def test_an_sqlite_url_gives_the_database_file() -> None:
    db = Database.parse("sqlite:///var/lib/forum/mybb.sqlite")
    assert (db.scheme, db.path) == ("sqlite", Path("/var/lib/forum/mybb.sqlite"))


def test_an_sqlite_url_without_a_path_is_refused() -> None:
    for url in ("sqlite://", "sqlite:///"):
        with pytest.raises(ConfigError, match="path"):
            Database.parse(url)


def test_other_schemes_are_refused() -> None:
    for url in ("pgsql://u:p@h/db", "http://h/db", "localhost/db", ""):
        with pytest.raises(ConfigError, match="scheme"):
            Database.parse(url)


def test_a_mysql_url_without_a_database_name_is_refused() -> None:
    for url in ("mysql://u:p@h", "mysql://u:p@h/", "mysql://u:p@h:3306/?charset=utf8"):
        with pytest.raises(ConfigError, match="database name"):
            Database.parse(url)


def test_an_invalid_port_is_refused() -> None:
    for url in ("mysql://u:p@h:port/db", "mysql://u:p@h:99999/db"):
        with pytest.raises(ConfigError):
            Database.parse(url)


def test_a_mysql_url_without_a_host_part_is_refused() -> None:
    # "mysql:user:pw@host/db" (no "//") must not become a database named "user:pw@host/db".
    for url in ("mysql:user:pw@host/db", "mysql:/user:pw@host/db"):
        with pytest.raises(ConfigError):
            Database.parse(url)


def test_a_database_name_with_a_raw_slash_is_refused() -> None:
    # An unencoded "/" in the password splits the URL early.
    with pytest.raises(ConfigError):
        Database.parse("mysql://user:12/34@host/db")


def test_a_db_value_that_is_not_text_is_refused() -> None:
    with pytest.raises(ConfigError):
        Database.parse(5)  # type: ignore[arg-type]


# --- the password stays secret ----------------------------------------------------------


def test_repr_of_a_database_hides_the_password() -> None:
    assert SECRET not in repr(Database.parse(f"mysql://u:{SECRET}@h/db"))


def test_str_of_a_database_hides_the_password() -> None:
    assert SECRET not in str(Database.parse(f"mysql://u:{SECRET}@h/db"))


def test_repr_of_settings_hides_the_password(cwd: Path) -> None:
    settings = load({"db": f"mysql://u:{SECRET}@h/db"}, cwd=cwd)
    assert SECRET not in repr(settings) and SECRET not in str(settings)


def test_redacted_masks_the_password() -> None:
    db = Database.parse(f"mysql://forum:{SECRET}@h:3307/mybb?unix_socket=/run/m.sock")
    assert db.redacted() == "mysql://forum:***@h:3307/mybb?unix_socket=/run/m.sock"


def test_redacted_shows_no_mask_without_a_password() -> None:
    assert Database.parse("mysql://forum@h/mybb").redacted() == "mysql://forum@h:3306/mybb"


def test_redacted_sqlite_url_shows_the_file() -> None:
    assert Database.parse("sqlite:///srv/f.sqlite").redacted() == "sqlite:///srv/f.sqlite"


def test_a_redacted_url_without_a_password_parses_back_to_the_same_database() -> None:
    for url in (
        "sqlite:///srv/f.sqlite",
        "sqlite:rel/f.sqlite",
        "mysql://forum@h:3307/mybb?unix_socket=/run/m.sock",
        "postgresql://forum@h:5433/mybb?host=/run/postgresql",
    ):
        db = Database.parse(url)
        assert Database.parse(db.redacted()) == db, url


def test_no_error_about_a_bad_url_contains_the_password() -> None:
    bad = [
        f"mysql://u:{SECRET}@h",
        f"mysql://u:{SECRET}@h:port/db",
        f"mysql://u:{SECRET}@h:99999/db",
        f"mysql://u:{SECRET}@[::1/db",
        f"pgsql://u:{SECRET}@h/db",
        f"postgres://u:{SECRET}@h:port/db",
        f"mysql:u:{SECRET}@h/db",
        f"mysql:/u:{SECRET}@h/db",
        f"mysql://u:12/{SECRET}@h/db",
        f"mysql://u:{SECRET}#x@h/db",
        f"mysql://u:{SECRET}?x@h/db",
        f"u:{SECRET}@h/db",
    ]
    for url in bad:
        with pytest.raises(ConfigError) as caught:
            Database.parse(url)
        assert SECRET not in str(caught.value) and SECRET not in repr(caught.value), url


def test_whatever_a_url_parses_to_never_shows_the_password() -> None:
    candidates = [
        f"mysql://u:{SECRET}@h/db",
        f"mysql://u:{SECRET}@h:3307/db?unix_socket=/s",
        f"mysql://u:a{SECRET}b@h/db",
        f"mysql://u:{SECRET}@@h/db",
        f"mysql://u:{SECRET}@h/db/",
        f"mysql://u:{SECRET}:x@h/db",
    ]
    for url in candidates:
        try:
            db = Database.parse(url)
        except ConfigError as exc:
            assert SECRET not in str(exc), url
            continue
        assert SECRET not in repr(db) and SECRET not in str(db) and SECRET not in db.redacted(), url


def test_an_error_about_a_bad_db_from_the_environment_does_not_contain_the_password(cwd: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(env={"MYBB_SYNC_DB": f"mysql://u:{SECRET}@h:bad/db"}, cwd=cwd)
    assert SECRET not in str(caught.value)


def test_an_error_about_a_bad_db_in_toml_does_not_contain_the_password(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text(f'db = "mysql:u:{SECRET}@h/db"\n')
    with pytest.raises(ConfigError) as caught:
        load(cwd=cwd)
    assert SECRET not in str(caught.value)


def test_an_error_about_another_setting_does_not_contain_the_password(cwd: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"db": f"mysql://u:{SECRET}@h/db", "prefix": "x;drop"}, cwd=cwd)
    assert SECRET not in str(caught.value)


def test_errors_about_a_forums_config_do_not_contain_the_password() -> None:
    for php in (
        mybb_installer_config(encoding="koi8r"),
        mybb_installer_config(dbengine="pgsql", dbhost="db:fivefourthreetwo", charsets=False),
        mybb_installer_config(dbengine="mssql", charsets=False),
        mybb_installer_config(tableprefix="bad-prefix"),
    ):
        with pytest.raises(ConfigError) as caught:
            forum(php)
        assert SECRET not in str(caught.value)


def test_a_database_read_from_the_forum_hides_the_password() -> None:
    db = forum(mybb_installer_config())
    assert SECRET not in repr(db) and SECRET not in db.redacted()


# --- table prefix --------------------------------------------------------------------------


def test_the_default_prefix_is_mybb_(cwd: Path) -> None:
    assert load(cwd=cwd).prefix == "mybb_"


def test_a_prefix_with_sql_in_it_is_refused() -> None:
    with pytest.raises(ConfigError, match="prefix"):
        validate_prefix("x;drop")


def test_a_prefix_of_31_characters_is_refused() -> None:
    with pytest.raises(ConfigError):
        validate_prefix("p" * 31)


def test_a_prefix_of_30_characters_is_accepted() -> None:
    assert validate_prefix("p" * 30) == "p" * 30


def test_an_empty_prefix_is_accepted() -> None:
    assert validate_prefix("") == ""


def test_a_prefix_with_other_characters_is_refused() -> None:
    for prefix in ("my-bb_", "my bb", "mybb`", "mÿbb_", "mybb_\n", "mybb.", "'"):
        with pytest.raises(ConfigError):
            validate_prefix(prefix)


def test_a_bad_prefix_from_the_environment_is_refused(cwd: Path) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        load(env={"MYBB_SYNC_PREFIX": "x;drop"}, cwd=cwd)


def test_a_bad_prefix_from_toml_is_refused(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text(f'prefix = "{"p" * 31}"\n')
    with pytest.raises(ConfigError, match="prefix"):
        load(cwd=cwd)


# --- precedence: flags > environment > TOML ------------------------------------------------


def test_a_flag_beats_the_environment_and_toml(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('prefix = "toml_"\n')
    assert load({"prefix": "flag_"}, {"MYBB_SYNC_PREFIX": "env_"}, cwd=cwd).prefix == "flag_"


def test_the_environment_beats_toml(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('prefix = "toml_"\n')
    assert load(env={"MYBB_SYNC_PREFIX": "env_"}, cwd=cwd).prefix == "env_"


def test_toml_is_used_when_neither_flag_nor_environment_says(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('prefix = "toml_"\n')
    assert load(cwd=cwd).prefix == "toml_"


def test_a_flag_left_unset_does_not_override(cwd: Path) -> None:
    assert load({"prefix": None}, {"MYBB_SYNC_PREFIX": "env_"}, cwd=cwd).prefix == "env_"


def test_precedence_is_per_key(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('root = "/from/toml"\ntemp_suffix = ".toml"\nprefix = "toml_"\n')
    settings = load({"root": "/from/flag"}, {"MYBB_SYNC_TEMP_SUFFIX": ".env"}, cwd=cwd)
    assert (settings.root, settings.temp_suffix, settings.prefix) == (Path("/from/flag"), ".env", "toml_")


def test_every_setting_has_its_environment_variable(cwd: Path) -> None:
    env = {
        "MYBB_SYNC_DB": "mysql://u@h/db",
        "MYBB_SYNC_PREFIX": "env_",
        "MYBB_SYNC_ROOT": "/r",
        "MYBB_SYNC_MYBB_ROOT": "/forum",
        "MYBB_SYNC_TEMP_SUFFIX": ".part",
        "MYBB_SYNC_ON_DELETE": "revert",
        "MYBB_SYNC_POLL_INTERVAL": "0.5",
        "MYBB_SYNC_RESCAN_INTERVAL": "60",
        "MYBB_SYNC_LOG_FORMAT": "json",
    }
    assert load(env=env, cwd=cwd) == Settings(
        db=Database.parse("mysql://u@h/db"), prefix="env_", root=Path("/r"), mybb_root=Path("/forum"),
        temp_suffix=".part", on_delete="revert", poll_interval=0.5, rescan_interval=60.0, log_format="json",
    )  # fmt: skip


def test_unrelated_environment_variables_are_ignored(cwd: Path) -> None:
    assert load(env={"MYBB_SYNC_UNKNOWN": "x", "PREFIX": "x;drop", "mybb_sync_prefix": "low_"}, cwd=cwd) == Settings()


def test_nothing_configured_gives_the_defaults(cwd: Path) -> None:
    assert load(cwd=cwd) == Settings()


def test_a_root_with_a_tilde_is_expanded(cwd: Path) -> None:
    assert load({"root": "~/look"}, cwd=cwd).root == Path(os.path.expanduser("~/look"))


# --- the TOML file ---------------------------------------------------------------------------


def test_mybb_sync_toml_is_read_from_the_working_directory(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('db = "mysql://forum@localhost/mybb"\nroot = "/srv/look"\n')
    settings = load(cwd=cwd)
    assert (settings.db, settings.root) == (Database.parse("mysql://forum@localhost/mybb"), Path("/srv/look"))


def test_an_explicit_config_file_is_read(cwd: Path, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('prefix = "explicit_"\n')
    assert load(cwd=cwd, config_path=path).prefix == "explicit_"


def test_an_explicit_config_file_replaces_the_working_directory_one(cwd: Path, tmp_path: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('prefix = "cwd_"\nroot = "/cwd"\n')
    path = tmp_path / "explicit.toml"
    path.write_text('prefix = "explicit_"\n')
    settings = load(cwd=cwd, config_path=path)
    assert (settings.prefix, settings.root) == ("explicit_", None)


def test_a_missing_explicit_config_file_is_refused(cwd: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load(cwd=cwd, config_path=tmp_path / "absent.toml")


def test_settings_may_sit_in_a_mybb_sync_table(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('[mybb-sync]\nprefix = "table_"\nroot = "/t"\n')
    settings = load(cwd=cwd)
    assert (settings.prefix, settings.root) == ("table_", Path("/t"))


def test_dashed_toml_keys_mean_the_underscored_setting(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('temp-suffix = ".part"\nmybb-root = "/forum"\ndb = "mysql://u@h/db"\n')
    settings = load(cwd=cwd)
    assert (settings.temp_suffix, settings.mybb_root) == (".part", Path("/forum"))


def test_an_unknown_top_level_key_is_refused(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('prefix = "x_"\npasword = "oops"\n')
    with pytest.raises(ConfigError, match="pasword"):
        load(cwd=cwd)


def test_an_unknown_key_in_the_mybb_sync_table_is_refused(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('[mybb-sync]\nroots = "/x"\n')
    with pytest.raises(ConfigError, match="roots"):
        load(cwd=cwd)


def test_an_unknown_table_is_refused(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('prefix = "x_"\n[other]\nkey = 1\n')
    with pytest.raises(ConfigError, match="other"):
        load(cwd=cwd)


def test_keys_beside_the_mybb_sync_table_are_refused_not_ignored(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('db = "mysql://u@h/db"\n[mybb-sync]\nroot = "/r"\n')
    with pytest.raises(ConfigError, match="db"):
        load(cwd=cwd)


def test_a_mybb_sync_key_that_is_not_a_table_is_refused(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text("mybb-sync = 3\n")
    with pytest.raises(ConfigError):
        load(cwd=cwd)


def test_a_malformed_toml_file_is_refused(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_text('prefix = "unterminated\n')
    with pytest.raises(ConfigError, match=r"mybb-sync\.toml"):
        load(cwd=cwd)


def test_a_toml_file_that_is_not_utf8_is_refused(cwd: Path) -> None:
    (cwd / "mybb-sync.toml").write_bytes(b'prefix = "\xff"\n')
    with pytest.raises(ConfigError):
        load(cwd=cwd)


def test_a_toml_value_of_the_wrong_type_is_refused(cwd: Path) -> None:
    for line in ('poll_interval = "soon"', "root = 5", "prefix = 5", "db = 5", "temp_suffix = 1", "on_delete = true"):
        (cwd / "mybb-sync.toml").write_text(line + "\n")
        with pytest.raises(ConfigError):
            load(cwd=cwd)


# --- other settings ------------------------------------------------------------------------


def test_a_temp_suffix_must_start_with_a_dot(cwd: Path) -> None:
    with pytest.raises(ConfigError, match="temp-suffix"):
        load({"temp_suffix": "tmp"}, cwd=cwd)


def test_a_temp_suffix_may_not_hold_a_separator(cwd: Path) -> None:
    for suffix in (".a/b", ".a\\b", ".", ".a b", "." + "x" * 17):
        with pytest.raises(ConfigError):
            load({"temp_suffix": suffix}, cwd=cwd)


def test_a_temp_suffix_that_real_files_end_with_is_refused(cwd: Path) -> None:
    # Every template file ends in .html and most stylesheets in .css: such a
    # suffix would make the watcher ignore them.
    for suffix in (".html", ".css", ".min.css", ".x.html"):
        with pytest.raises(ConfigError, match="temp-suffix"):
            load({"temp_suffix": suffix}, cwd=cwd)


def test_on_delete_is_ignore_or_revert(cwd: Path) -> None:
    assert load({"on_delete": "revert"}, cwd=cwd).on_delete == "revert"
    with pytest.raises(ConfigError, match="on-delete"):
        load({"on_delete": "delete"}, cwd=cwd)


def test_intervals_must_be_positive(cwd: Path) -> None:
    for key in ("poll_interval", "rescan_interval"):
        for value in ("0", "-1"):
            with pytest.raises(ConfigError, match=key.replace("_", "-")):
                load({key: value}, cwd=cwd)


def test_log_format_is_text_or_json(cwd: Path) -> None:
    with pytest.raises(ConfigError, match="log-format"):
        load({"log_format": "xml"}, cwd=cwd)


def test_require_db_explains_how_to_configure_one() -> None:
    with pytest.raises(ConfigError, match="--db"):
        Settings().require_db()


def test_require_root_explains_how_to_configure_one() -> None:
    with pytest.raises(ConfigError, match="--root"):
        Settings().require_root()


# --- inc/config.php as the installer writes it ----------------------------------------------


def test_the_installers_config_gives_the_connection() -> None:
    db = forum(mybb_installer_config(dbname="forumdb", dbhost="db.internal", dbuser="forum"))
    assert (db.scheme, db.host, db.port, db.user, db.password, db.name, db.unix_socket) == (
        "mysql", "db.internal", 3306, "forum", SECRET, "forumdb", None,
    )  # fmt: skip


def test_the_installers_config_gives_the_table_prefix() -> None:
    assert forum_prefix(mybb_installer_config(tableprefix="board_")) == "board_"


def test_an_empty_table_prefix_is_kept() -> None:
    assert forum_prefix(mybb_installer_config(tableprefix="")) == ""


def test_utf8mb4_encoding_is_the_connection_charset() -> None:
    assert forum(mybb_installer_config(encoding="utf8mb4")).charset == "utf8mb4"


def test_utf8_encoding_is_the_connection_charset() -> None:
    assert forum(mybb_installer_config(encoding="utf8")).charset == "utf8"


def test_an_unsupported_encoding_is_refused() -> None:
    with pytest.raises(ConfigError, match="encoding"):
        forum(mybb_installer_config(encoding="koi8r"))


def test_a_hostname_with_a_port_gives_host_and_port() -> None:
    db = forum(mybb_installer_config(dbhost="127.0.0.1:3307"))
    assert (db.host, db.port, db.unix_socket) == ("127.0.0.1", 3307, None)


def test_a_hostname_that_is_a_socket_path_gives_the_socket() -> None:
    db = forum(mybb_installer_config(dbhost="/var/run/mysqld/mysqld.sock"))
    assert (db.host, db.unix_socket) == ("localhost", "/var/run/mysqld/mysqld.sock")


def test_a_hostname_with_a_socket_after_the_colon_gives_the_socket() -> None:
    db = forum(mybb_installer_config(dbhost="localhost:/run/mysqld/mysqld.sock"))
    assert (db.host, db.unix_socket) == ("localhost", "/run/mysqld/mysqld.sock")


def test_the_password_is_read_as_php_reads_the_installers_addslashes() -> None:
    # addslashes() escapes ' \ " NUL; inside single quotes PHP only undoes \\ and \'.
    password = 'it\'s a \\ "quoted" pass'
    db = forum(mybb_installer_config(dbpass=password))
    assert db.password == 'it\'s a \\ \\"quoted\\" pass'


def test_a_password_with_php_and_url_characters_is_kept_verbatim() -> None:
    password = "p@ss:w/rd?#%$x{y}"
    assert forum(mybb_installer_config(dbpass=password)).password == password


def test_the_legacy_mysql_engine_is_accepted() -> None:
    assert forum(mybb_installer_config(dbengine="mysql")).scheme == "mysql"


def test_an_sqlite_board_gives_its_database_file() -> None:
    php = mybb_installer_config(dbengine="sqlite", dbname="/srv/forum/mybb.db", dbuser="", dbpass="", charsets=False)
    db = forum(php)
    assert (db.scheme, db.path) == ("sqlite", Path("/srv/forum/mybb.db"))


def test_an_sqlite_board_keeps_its_table_prefix() -> None:
    php = mybb_installer_config(dbengine="sqlite", dbname="/srv/f.db", tableprefix="sq_", charsets=False)
    assert forum_prefix(php) == "sq_"


def test_a_postgresql_board_connects_as_mybbs_pgsql_driver_does() -> None:
    db = forum(mybb_installer_config(dbengine="pgsql", dbhost="db.example", charsets=False))
    assert (db.scheme, db.host, db.port, db.user, db.password, db.name, db.unix_socket) == (
        "postgresql", "db.example", 5432, "forum", SECRET, "mybb", None,
    )  # fmt: skip


def test_a_postgresql_hostname_may_end_in_its_port() -> None:
    assert forum(mybb_installer_config(dbengine="pgsql", dbhost="db.example:5433", charsets=False)).port == 5433


def test_a_postgresql_board_without_a_hostname_uses_the_local_socket() -> None:
    db = forum(mybb_installer_config(dbengine="pgsql", dbhost="", charsets=False))
    assert db.unix_socket == "/var/run/postgresql"


def test_a_postgresql_board_keeps_its_table_prefix() -> None:
    php = mybb_installer_config(dbengine="pgsql", tableprefix="pg_", charsets=False)
    assert forum_prefix(php) == "pg_"


def test_another_database_engine_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="'mssql' is not supported"):
        forum(mybb_installer_config(dbengine="mssql", charsets=False))


def test_a_forum_table_prefix_we_cannot_use_is_refused() -> None:
    with pytest.raises(ConfigError, match="prefix"):
        forum(mybb_installer_config(tableprefix="x;drop"))


def test_commented_out_assignments_are_not_settings() -> None:
    php = mybb_installer_config(dbhost="db.internal") + (
        "// $config['database']['hostname'] = 'old.internal';\n"
        "# $config['database']['username'] = 'olduser';\n"
        "/* $config['database']['write']['hostname'] = 'never.internal'; */\n"
    )
    db = forum(php)
    assert (db.host, db.user) == ("db.internal", "forum")


def test_a_commented_out_encoding_is_not_the_charset() -> None:
    php = mybb_installer_config(encoding="utf8") + "// $config['database']['encoding'] = 'latin1';\n"
    assert forum(php).charset == "utf8"


def test_comment_markers_inside_a_value_are_part_of_the_value() -> None:
    db = forum(mybb_installer_config(dbpass="a//b#c/*d*/"))
    assert db.password == "a//b#c/*d*/"


def test_double_quoted_values_are_read_as_php_reads_them() -> None:
    php = mybb_installer_config().replace(
        f"$config['database']['password'] = '{SECRET}';",
        '$config[\'database\']["password"] = "a\\$b\\"c\\\\d\\q";',
    )
    assert forum(php).password == 'a$b"c\\d\\q'


def test_a_config_without_database_settings_is_refused(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "config.php").write_text("<?php\n$config['admin_dir'] = 'admin';\n")
    with pytest.raises(ConfigError, match="no \\$config\\['database'\\]"):
        read_forum_config(tmp_path)


def test_a_missing_config_php_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.php"):
        read_forum_config(tmp_path)


def test_read_forum_config_reads_inc_config_php(mybb_root: Path) -> None:
    found = read_forum_config(mybb_root)
    assert (found.database.name, found.database.password, found.prefix) == ("mybb", SECRET, "board_")


# --- boards with a replica -------------------------------------------------------------------


def test_a_replica_board_writes_through_the_write_connection() -> None:
    db = forum(REPLICA_SINGLE)
    assert (db.host, db.port, db.user, db.password) == ("primary.internal", 3307, "writer", SECRET)


def test_a_replica_board_with_connection_lists_writes_through_a_write_connection() -> None:
    db = forum(REPLICA_LIST)
    assert (db.host, db.user, db.password) == ("primary.internal", "writer", SECRET)


def test_a_replica_board_never_connects_to_a_read_replica() -> None:
    for php in (REPLICA_SINGLE, REPLICA_LIST):
        assert "replica" not in forum(php).host


def test_a_replica_board_keeps_the_top_level_database_prefix_and_encoding() -> None:
    found = forum_database(parse_forum_config(REPLICA_LIST))
    assert (found.database.name, found.prefix, found.database.charset) == ("mybb", "forum_", "utf8")


def test_the_top_level_database_name_wins_as_mybb_selects_it() -> None:
    # MyBB's connect() selects $config['database']['database'] on every link.
    php = REPLICA_SINGLE + "$config['database']['write']['database'] = 'ignored_by_mybb';\n"
    assert forum(php).name == "mybb"


def test_a_connections_own_database_name_is_used_without_a_top_level_one() -> None:
    php = REPLICA_SINGLE.replace("$config['database']['database'] = 'mybb';\n", "") + (
        "$config['database']['write']['database'] = 'from_write';\n"
    )
    assert forum(php).name == "from_write"


def test_a_board_with_only_read_connections_writes_where_mybb_does() -> None:
    # Without ['write'], MyBB mirrors the write link onto the read link.
    php = REPLICA_SINGLE.split("$config['database']['write']")[0]
    db = forum(php)
    assert (db.host, db.user) == ("replica.internal", "reader")


def test_a_board_with_a_plain_list_of_connections_uses_one_of_them() -> None:
    # $config['database'][0]['hostname'] ...: several servers, no read/write split.
    php = (
        "<?php\n$config['database']['type'] = 'mysqli';\n$config['database']['database'] = 'mybb';\n"
        "$config['database']['table_prefix'] = 'mybb_';\n$config['database']['encoding'] = 'utf8mb4';\n"
        "$config['database'][0]['hostname'] = 'db1.internal';\n$config['database'][0]['username'] = 'u1';\n"
        f"$config['database'][0]['password'] = '{SECRET}';\n"
    )
    db = forum(php)
    assert (db.host, db.user, db.password) == ("db1.internal", "u1", SECRET)


# --- --mybb-root, --db and --prefix together ------------------------------------------------


def test_without_db_the_connection_comes_from_the_forums_config(cwd: Path, mybb_root: Path) -> None:
    settings = load({"mybb_root": str(mybb_root)}, cwd=cwd)
    assert settings.db == read_forum_config(mybb_root).database


def test_without_a_prefix_setting_the_forums_table_prefix_is_used(cwd: Path, mybb_root: Path) -> None:
    assert load({"mybb_root": str(mybb_root)}, cwd=cwd).prefix == "board_"


def test_db_wins_over_mybb_root(cwd: Path, tmp_path: Path) -> None:
    # The forum folder is not even read: it does not exist.
    settings = load({"db": "mysql://u@h/flagdb", "mybb_root": str(tmp_path / "absent")}, cwd=cwd)
    assert settings.db is not None and settings.db.name == "flagdb"


def test_prefix_wins_over_the_forums_table_prefix(cwd: Path, mybb_root: Path) -> None:
    assert load({"mybb_root": str(mybb_root), "prefix": "flag_"}, cwd=cwd).prefix == "flag_"


def test_a_prefix_from_the_environment_wins_over_the_forums_table_prefix(cwd: Path, mybb_root: Path) -> None:
    assert load({"mybb_root": str(mybb_root)}, {"MYBB_SYNC_PREFIX": "env_"}, cwd=cwd).prefix == "env_"


def test_a_prefix_set_to_the_default_still_wins_over_the_forums(cwd: Path, mybb_root: Path) -> None:
    assert load({"mybb_root": str(mybb_root), "prefix": "mybb_"}, cwd=cwd).prefix == "mybb_"


def test_a_mybb_root_without_config_php_is_refused(cwd: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.php"):
        load({"mybb_root": str(tmp_path)}, cwd=cwd)
