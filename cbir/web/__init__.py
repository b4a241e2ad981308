"""The web interface's modules besides app.py: the JSON API blueprint and what the blueprints share."""
