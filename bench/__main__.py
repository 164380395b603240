"""`python -m bench`: see bench/main.py."""

from bench.main import main

raise SystemExit(main())
