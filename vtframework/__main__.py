"""``python -m vtframework``: the same as the ``vtframework`` command."""

import sys

from vtframework.cli import main

sys.exit(main())
