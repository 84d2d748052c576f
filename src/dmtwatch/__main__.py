from dmtwatch.cli import app

app(prog_name="dmtwatch")
