"""`python -m kmeans_cli`: see the package's docstring."""

import sys

from kmeans_cli import main

sys.exit(main())
