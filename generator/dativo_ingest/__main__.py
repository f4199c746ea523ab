from dativo_ingest.cli import main

main()
