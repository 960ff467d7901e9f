"""`python -m exporter.simulator ...` runs the same program as `python exporter/simulator/main.py ...`."""

import sys

from .main import main

sys.exit(main())
