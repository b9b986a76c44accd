"""``python -m backups.engine verify|extract|decrypt|list FILE ...`` (see cli.py)."""
import sys

from .cli import main

sys.exit(main())
