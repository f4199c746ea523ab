import sys

from dativo_ingest.launch import main

sys.exit(main())
