from rockedge.cli import main

main(prog_name="rockedge")
