from proml_lab.cli import main

main()
