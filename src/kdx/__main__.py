from kdx.cli import main

raise SystemExit(main())
