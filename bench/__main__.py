"""`python -m bench`: the fan-out benchmark; `python -m bench login-storm …`: the auth storm."""

import sys

if sys.argv[1:2] == ["login-storm"]:
    from bench.login_storm import main as login_storm

    login_storm(sys.argv[2:])
else:
    from bench.fanout import main

    main()
