"""MyBB 1.8's DDL for the tables mybb-sync touches (columns, types, keys, MyISAM).

Used to build throwaway boards for tests, the benchmark and the demo; it
mirrors ``install/resources/mysql_db_tables.php``, ``pgsql_db_tables.php``
and ``sqlite_db_tables.php`` for these six tables.
"""

from __future__ import annotations

from .config import validate_prefix

_MYSQL_TABLES = {
    "templates": """
        tid int unsigned NOT NULL auto_increment,
        title varchar(120) NOT NULL default '',
        template text NOT NULL,
        sid smallint NOT NULL default '0',
        version varchar(20) NOT NULL default '0',
        status varchar(10) NOT NULL default '',
        dateline int unsigned NOT NULL default '0',
        KEY sid (sid, title),
        PRIMARY KEY (tid)""",
    "templatesets": """
        sid smallint unsigned NOT NULL auto_increment,
        title varchar(120) NOT NULL default '',
        PRIMARY KEY (sid)""",
    "templategroups": """
        gid int unsigned NOT NULL auto_increment,
        prefix varchar(50) NOT NULL default '',
        title varchar(100) NOT NULL default '',
        isdefault tinyint(1) NOT NULL default '0',
        PRIMARY KEY (gid)""",
    "themes": """
        tid smallint unsigned NOT NULL auto_increment,
        name varchar(100) NOT NULL default '',
        pid smallint unsigned NOT NULL default '0',
        def tinyint(1) NOT NULL default '0',
        properties text NOT NULL,
        stylesheets text NOT NULL,
        allowedgroups text NOT NULL,
        PRIMARY KEY (tid)""",
    "themestylesheets": """
        sid int unsigned NOT NULL auto_increment,
        name varchar(30) NOT NULL default '',
        tid smallint unsigned NOT NULL default '0',
        attachedto text NOT NULL,
        stylesheet longtext NOT NULL,
        cachefile varchar(100) NOT NULL default '',
        lastmodified int unsigned NOT NULL default '0',
        KEY tid (tid),
        PRIMARY KEY (sid)""",
    "datacache": """
        title varchar(50) NOT NULL default '',
        cache mediumtext NOT NULL,
        PRIMARY KEY (title)""",
}


def mysql_ddl(prefix: str, charset: str = "utf8mb4") -> list[str]:
    """``CREATE TABLE`` statements, as MyBB's installer creates them."""
    p = validate_prefix(prefix)
    return [
        f"CREATE TABLE `{p}{name}` ({body}\n) ENGINE=MyISAM DEFAULT CHARSET={charset}"
        for name, body in _MYSQL_TABLES.items()
    ]


_SQLITE_TABLES = {
    "templates": """
        tid INTEGER PRIMARY KEY,
        title varchar(120) NOT NULL default '',
        template TEXT NOT NULL,
        sid smallint NOT NULL default '0',
        version varchar(20) NOT NULL default '0',
        status varchar(10) NOT NULL default '',
        dateline int NOT NULL default '0'""",
    "templatesets": """
        sid INTEGER PRIMARY KEY,
        title varchar(120) NOT NULL default ''""",
    "templategroups": """
        gid INTEGER PRIMARY KEY,
        prefix varchar(50) NOT NULL default '',
        title varchar(100) NOT NULL default '',
        isdefault tinyint(1) NOT NULL default '0'""",
    "themes": """
        tid INTEGER PRIMARY KEY,
        name varchar(100) NOT NULL default '',
        pid smallint NOT NULL default '0',
        def tinyint(1) NOT NULL default '0',
        properties TEXT NOT NULL,
        stylesheets TEXT NOT NULL,
        allowedgroups TEXT NOT NULL""",
    "themestylesheets": """
        sid INTEGER PRIMARY KEY,
        name varchar(30) NOT NULL default '',
        tid smallint unsigned NOT NULL default '0',
        attachedto TEXT NOT NULL,
        stylesheet LONGTEXT NOT NULL,
        cachefile varchar(100) NOT NULL default '',
        lastmodified int unsigned NOT NULL default '0'""",
    "datacache": """
        title varchar(50) NOT NULL default '' PRIMARY KEY,
        cache mediumTEXT NOT NULL""",
}


def sqlite_ddl(prefix: str) -> list[str]:
    """``CREATE TABLE`` statements of MyBB's SQLite 3 engine, plus the (sid, title) index MySQL has."""
    p = validate_prefix(prefix)
    tables = [f"CREATE TABLE {p}{name} ({body}\n)" for name, body in _SQLITE_TABLES.items()]
    return tables + [f"CREATE INDEX {p}templates_sid ON {p}templates (sid, title)"]


# As MyBB 1.8.37's installer creates them on PostgreSQL: ids from sequences (serial), the
# stylesheets' tid and lastmodified numeric (drivers hand them back as decimals), and no index
# on templates (sid, title), only primary keys.
_PGSQL_TABLES = {
    "templates": """
        tid serial,
        title varchar(120) NOT NULL default '',
        template text NOT NULL default '',
        sid smallint NOT NULL default '0',
        version varchar(20) NOT NULL default '0',
        status varchar(10) NOT NULL default '',
        dateline int NOT NULL default '0',
        PRIMARY KEY (tid)""",
    "templatesets": """
        sid serial,
        title varchar(120) NOT NULL default '',
        PRIMARY KEY (sid)""",
    "templategroups": """
        gid serial,
        prefix varchar(50) NOT NULL default '',
        title varchar(100) NOT NULL default '',
        isdefault smallint NOT NULL default '0',
        PRIMARY KEY (gid)""",
    "themes": """
        tid serial,
        name varchar(100) NOT NULL default '',
        pid smallint NOT NULL default '0',
        def smallint NOT NULL default '0',
        properties text NOT NULL default '',
        stylesheets text NOT NULL default '',
        allowedgroups text NOT NULL default '',
        PRIMARY KEY (tid)""",
    "themestylesheets": """
        sid serial,
        name varchar(30) NOT NULL default '',
        tid numeric(10,0) NOT NULL default '0',
        attachedto text NOT NULL,
        stylesheet text NOT NULL,
        cachefile varchar(100) NOT NULL default '',
        lastmodified numeric(30,0) NOT NULL default '0',
        PRIMARY KEY(sid)""",
    "datacache": """
        title varchar(50) NOT NULL default '',
        cache text NOT NULL default '',
        PRIMARY KEY (title)""",
}

# The serial column of each table, whose sequence an install with explicit ids must move on.
PGSQL_SERIALS = {"templates": "tid", "templatesets": "sid", "templategroups": "gid", "themes": "tid",
                 "themestylesheets": "sid"}  # fmt: skip


def pgsql_ddl(prefix: str) -> list[str]:
    """``CREATE TABLE`` statements of MyBB's PostgreSQL engine."""
    p = validate_prefix(prefix)
    return [f"CREATE TABLE {p}{name} ({body}\n)" for name, body in _PGSQL_TABLES.items()]
