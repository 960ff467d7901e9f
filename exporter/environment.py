"""What we read from the environment: $TWITCHMINERT_HOME, under which our own files are by default
(the config's storage.path and the flags --config.file, --log.file move them), and the name of the
variable that holds `login`'s password.

Apart from config.py so that the command line names these in its help without loading the config's code.
"""

import os
from pathlib import Path

HOME = Path(os.environ.get("TWITCHMINERT_HOME", "~/.twitchminert")).expanduser()
DEFAULT_CONFIG_FILE = HOME / "config" / "twitchminert.yaml"
DEFAULT_DATA_DIR = HOME / "data"
DEFAULT_LOG_FILE = HOME / "logs" / "twitchminert.log"  # our own log, beside the data
# `login`'s basic auth password: from the environment, never a flag (flags show in `ps`)
WEB_PASSWORD_VARIABLE = "TWITCHMINERT_WEB_PASSWORD"
