from rockedge.cli import main

main()
