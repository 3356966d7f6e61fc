from trio_pool.cli import main

raise SystemExit(main())
