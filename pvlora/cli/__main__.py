"""`python -m pvlora.cli` (as `accelerate launch -m pvlora.cli` runs it)."""

import sys

from pvlora.cli import main

sys.exit(main())
