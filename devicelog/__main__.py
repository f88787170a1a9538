from devicelog.cli import main

raise SystemExit(main())
