"""`python -m smolora_engine.cli`: how the app and the runner start the engine."""

import sys

from . import main

sys.exit(main())
