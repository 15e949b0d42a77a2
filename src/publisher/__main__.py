from publisher.cli.main import main

main()
