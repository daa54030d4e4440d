from conch.cli import main

main()
