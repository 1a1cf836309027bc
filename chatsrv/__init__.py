"""chatsrv: a self-hosted chat server for one box."""
__version__ = "0.1.0"
