"""``python -m backups.engine.region_helper``: the entry point of a region helper
process (see ``regionworker.py``); a module of its own so that running it does
not re-run a module the package has already imported."""
from .regionworker import main

main()
