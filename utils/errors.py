"""User-facing errors: bad config, bad files, bad data.

Every command catches `UserError` at its entry point and prints it as one line naming the
culprit (config key or file), so that a researcher never has to read a traceback from deep
inside numpy to learn that a mask has the wrong size.
"""
import sys
from collections.abc import Callable
from typing import NoReturn


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


class ConfigError(UserError):
    """An invalid configuration: the message names the config key."""


class DataError(UserError):
    """An invalid data file: the message names the file."""


def run_cli(main: Callable[[], object]) -> NoReturn:
    """Run a command's `main`, turning `UserError` and Ctrl-C into a one-line message and an exit
    code."""
    try:
        main()
    except UserError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(0)


def one_line(error: UserError) -> str:
    """The error's message; for one re-raised from a DataLoader worker (whose message carries the
    worker's traceback), only the original message from its last line."""
    message = str(error).strip()
    if "Original Traceback" not in message:
        return message
    last = message.splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last


class OutputError(UserError):
    """A file that a command writes could not be written (no space, too large, no permission):
    the message names the file."""
