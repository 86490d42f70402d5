"""``python -m bot.cli``: the same as the ``unioncard`` command."""

import sys

from bot.cli.parser import main

sys.exit(main())
