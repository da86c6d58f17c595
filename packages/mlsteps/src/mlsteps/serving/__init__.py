"""Online scoring: the server (server.py), its app (app.py), API keys (auth.py) and the inference log."""
