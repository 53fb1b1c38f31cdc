"""`python -m xlt ...` is the same as the `xlt` command."""
import sys

from xlt.cli import main

sys.exit(main())
