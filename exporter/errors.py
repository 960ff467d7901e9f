"""The errors a user acts on from their message alone: the command line prints them and exits 2.

Each stays in its own module (`ConfigError` in config.py, `StoreError` in store.py...) and also derives
from `UserError`, so the command line catches them all without importing the modules that define them:
`replay` starts without the web config's ssl and bcrypt, or the store's sqlite3.
"""


class UserError(Exception):
    """A problem that names its file, line or flag, one line each: reported as is (no traceback), exit 2."""
