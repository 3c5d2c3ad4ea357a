"""The Telegram side of 차차: a bot 진주 can talk to, and the collector of chat history.

Nothing here answers by itself: every reply comes from the inference server, as for the doll.
"""
