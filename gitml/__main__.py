from gitml.cli import main

main(prog_name="gitml")
