import sys

from faceops.cli import main

sys.exit(main())
