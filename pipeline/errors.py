"""The one exception type for user errors; `cli.main` turns it into a one-line message and an exit code."""


class UserError(Exception):
    """A problem the user can fix: a bad config, a missing file, a malformed input row.

    The message names the file, field or row. Raised early, before work starts, where possible.
    """

    exit_code = 2
