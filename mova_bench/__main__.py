from mova_bench.cli import main

raise SystemExit(main())
