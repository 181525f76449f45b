"""The one exception type for user errors; `cli.main` turns it into a one-line message and an exit code."""


class UserError(Exception):
    """A problem the user can fix: a bad config, a missing file, a malformed input row.

    The message names the file, field or row. Raised early, before work starts, where possible.
    """

    exit_code = 2


def storage_error(path, reason: str, kept: str = "finished shards are kept") -> UserError:
    """What a write that failed (a full disk, a quota, a read-only folder) tells the user: the file, the reason,
    what is intact and how to go on."""
    return UserError(f"cannot write {path}: {reason}; {kept}: free space and re-run the same command to resume")
