"""`python -m totoshka` is the `totoshka` command."""

from totoshka.cli.main import app

if __name__ == "__main__":
    app(prog_name="totoshka")
