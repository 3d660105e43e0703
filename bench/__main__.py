"""`python -m bench`: the fan-out benchmark; `python -m bench login-storm …`: the auth storm;
`python -m bench action-flood …`: one user flooding the cable with actions;
`python -m bench selfcheck …`: the requests/s the publisher can send on this machine;
`python -m bench chart RESULTS.json [--out CHART.svg]`: a saved run's chart drawn again."""

import sys

if sys.argv[1:2] == ["login-storm"]:
    from bench.login_storm import main as login_storm

    login_storm(sys.argv[2:])
elif sys.argv[1:2] == ["action-flood"]:
    from bench.action_flood import main as action_flood

    action_flood(sys.argv[2:])
elif sys.argv[1:2] == ["selfcheck"]:
    from bench.selfcheck import main as selfcheck

    selfcheck(sys.argv[2:])
elif sys.argv[1:2] == ["chart"]:
    from bench.chart import main as chart

    chart(sys.argv[2:])
else:
    from bench.fanout import main

    main()
