"""`python -m bench`: the fan-out benchmark's command line."""

from bench.fanout import main

main()
