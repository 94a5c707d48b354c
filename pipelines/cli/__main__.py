"""``python -m pipelines.cli``: the same as the ``ews`` script."""

import sys

from pipelines.cli.main import main

sys.exit(main())
