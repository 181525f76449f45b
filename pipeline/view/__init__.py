"""`trajforge view`: a read-only web app over a run directory (catalog.py queries the shards, present.py lays a
row out, app.py serves the pages, server.py runs it on 127.0.0.1)."""
