"""The kiosk tablet app (static files), shipped as package data and served at /kiosk/."""
