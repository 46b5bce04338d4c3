from reasonlab.cli import main

main()
