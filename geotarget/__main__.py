from geotarget.cli import app

app()
