"""Infrastructure every package shares: secrets, folders, SQLite.

A leaf package: it imports nothing from the project, so the doll, the server, the Telegram bot and
the tools may all use it without pulling each other in.
"""
