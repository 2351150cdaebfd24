import sys

from lorag.cli import main

sys.exit(main())
