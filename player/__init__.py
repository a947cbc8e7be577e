"""Cunping player: the kiosk app for set-top boxes and village screens.

It never imports the server or Flask; the server may import its renderer and protocol.
"""
