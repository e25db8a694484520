import sys

from medcnn.cli import main

sys.exit(main())
