from ggufsm.cli import main

raise SystemExit(main())
