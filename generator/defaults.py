"""`make seed`'s defaults (Makefile ORDERS, SEED, DAYS; cli.py seed's --threads, no --rate, no --duration)
and its one limit (MAX_ORDERS): the path a user takes, which the bench's generator figure runs as it is.
A module of its own so the CLI can name them without importing the generator (Faker, boto3) for every
command."""

DEFAULT_ORDERS = 2000
DEFAULT_SEED = 42
DEFAULT_DAYS = 14.0
DEFAULT_THREADS = 2
MAX_ORDERS = 1_000_000  # the generator keeps every order's final state in memory for `make verify`
