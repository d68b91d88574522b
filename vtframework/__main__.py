"""``python -m vtframework``: the same as the ``vtframework`` command."""

import sys

from vtframework.cli.main import main

sys.exit(main())
