"""`python -m docqa` is the `docqa` command."""

from docqa.cli.main import main

main()
