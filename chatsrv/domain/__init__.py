"""The domain: what each op means. Accounts, messages, groups, presence, typing and push
subscriptions each have a module holding their handlers, their rules, and the write ops
that apply those rules inside the writer's transaction through the store interface.

Must never touch LMDB, a key layout or a socket: reads and writes go through
chatsrv.store's typed interface, bytes go out through a connection's `send`.
"""
