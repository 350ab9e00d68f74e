"""The system calls of a batch write, without the interpreter lock (``_writes.c``; see atomic.py)."""

def create_temps(
    dfds: list[int],
    names: list[str],
    datas: list[bytes],
    modes: list[int],
    gids: list[int],
    fsync_each: bool,
    backdate_ns: int,
    /,
) -> list[int | tuple[int, int, int]]: ...
def rename_new(dfds: list[int], temps: list[str], names: list[str], /) -> list[int]: ...
