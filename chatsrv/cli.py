"""The command line: `chatsrv serve` with one flag per setting in config.OPTIONS,
each also read from the environment as CHATSRV_<NAME>."""
import argparse
import os
import sys

from .config import OPTIONS, Config


def _env(name, typ, default):
    raw = os.environ.get("CHATSRV_" + name.upper())
    if raw is None:
        return default
    if typ is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if typ is list:
        return [x for x in raw.replace(",", " ").split() if x]
    return typ(raw)


def parser():
    ap = argparse.ArgumentParser(prog="chatsrv", description="A self-hosted chat server.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the server",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for name, typ, default, help_ in OPTIONS:
        flag = "--" + name.replace("_", "-")
        dflt = _env(name, typ, default)
        if typ is bool:
            serve.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=dflt, help=help_)
        elif typ is list:
            serve.add_argument(flag, dest=name, action="append", default=None, help=help_)
            serve.set_defaults(**{name + "_env": dflt})
        else:
            serve.add_argument(flag, dest=name, type=typ, default=dflt, help=help_)
    au = sub.add_parser("adduser", help="create an account (reads the password from stdin); "
                                        "for servers run with --no-signup")
    au.add_argument("--data", default=_env("data", str, "./data"), help="data directory")
    au.add_argument("user", help="user name (^[a-z0-9_]{3,32}$)")
    bk = sub.add_parser("backup", help="copy a data directory (the server may be running) to DEST")
    bk.add_argument("--data", default=_env("data", str, "./data"), help="data directory to copy")
    bk.add_argument("dest", help="new directory to create with the copy")
    return ap


def config_from_args(argv=None):
    args = parser().parse_args(argv)
    if args.cmd in ("backup", "adduser"):
        return args.cmd, args
    kw = {}
    for name, typ, _, _ in OPTIONS:
        v = getattr(args, name)
        if typ is list:
            v = (getattr(args, name + "_env") or []) + (v or [])
        kw[name] = v
    return args.cmd, Config(**kw)


def main(argv=None):
    cmd, cfg = config_from_args(argv)
    if cmd == "serve":
        from .server import serve

        return serve(cfg)
    if cmd == "adduser":
        return adduser(cfg.data, cfg.user)
    if cmd == "backup":
        from .datadir import NoDatabase
        from .store import backup

        try:
            backup(cfg.data, cfg.dest)
        except (OSError, NoDatabase) as e:
            print(f"chatsrv backup: {e}", file=sys.stderr)
            return 1
        print(f"copied {cfg.data} to {cfg.dest}")
        return 0
    return 2


def adduser(data, user):
    import getpass

    from . import protocol as P
    from .auth import Passwords
    from .datadir import NoDatabase, require_database
    from .store import add_user

    try:
        require_database(data)
    except NoDatabase as e:
        print(f"chatsrv adduser: {e}", file=sys.stderr)
        return 1
    pw = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    try:
        P.user_name("user", user)
        P.password("password", pw)
    except ValueError as e:
        print(f"chatsrv adduser: {e}", file=sys.stderr)
        return 1
    if not add_user(data, user, Passwords().hasher.hash(pw)):
        print(f"chatsrv adduser: {user} exists", file=sys.stderr)
        return 1
    print(f"created {user}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
