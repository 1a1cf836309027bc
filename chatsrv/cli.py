"""The command line: `chatsrv serve` with one flag per setting in config.OPTIONS (each
also read from CHATSRV_<NAME> and from the --config file), and the operator's commands
on a data directory. Operator mistakes end in one line on stderr, never a traceback."""
import argparse
import os
import sys

from . import __version__
from . import config as C

EPILOG = """\
Each setting comes from, highest first: its flag, the environment variable named in
its help, the TOML file given with --config (or CHATSRV_CONFIG; keys are the flag
names: map_size = "64GiB"), its default. Sizes take units (16384, 512KiB, 64M, 1G:
K, M, G, T are powers of 1024, KB, MB, GB of 1000); times too (30, 30s, 500ms, 2m, 1h).
`chatsrv serve --print-config` shows the effective settings and where each came from."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _add_setting(p, name, typ, default, help_):
    flag = C.flag_name(name)
    shown = C.show(name, default) if typ is not bool else ("on" if default else "off")
    help_ = f"{help_} [default {shown}; env {C.env_name(name)}]".replace("%", "%%")
    if typ is bool:
        p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_)
    elif typ is list:
        p.add_argument(flag, dest=name, action="append", default=None, metavar="VALUE", help=help_)
    else:
        metavar = (typ.metavar if isinstance(typ, C.Unit) else "N" if typ in (int, float)
                   else {"data": "DIR"}.get(name, name.split("_")[-1].upper()))
        p.add_argument(flag, dest=name, default=None, metavar=metavar, help=help_)


def _add_config(p):
    p.add_argument("--config", metavar="FILE", default=None,
                   help="TOML file of settings [env CHATSRV_CONFIG]")


def _add_data(p):
    _add_config(p)
    p.add_argument("--data", metavar="DIR", default=None,
                   help=f"data directory [default ./data; env {C.env_name('data')}]")


def parser():
    ap = _Parser(prog="chatsrv", description="A self-hosted chat server.")
    ap.add_argument("--version", action="version", version=f"chatsrv {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the server", description="Run the server.", epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config(serve)
    serve.add_argument("--print-config", action="store_true",
                       help="print the effective settings (TOML, with where each came from) and exit")
    for name, typ, default, help_ in C.OPTIONS:
        _add_setting(serve, name, typ, default, help_)
    au = sub.add_parser("adduser", help="create an account (reads the password from stdin); "
                                        "for servers run with --no-signup")
    _add_data(au)
    au.add_argument("user", help="user name (^[a-z0-9_]{3,32}$)")
    bk = sub.add_parser("backup", help="copy a data directory (the server may be running) to DEST")
    _add_data(bk)
    bk.add_argument("dest", help="new directory to create with the copy")
    return ap


def settings(args, env=None):
    """(Config, sources) for parsed args: flags over environment over --config file over defaults."""
    env = os.environ if env is None else env
    path = args.config or env.get("CHATSRV_CONFIG") or None
    flags = {name: getattr(args, name) for name in C.BY_NAME if hasattr(args, name)}
    return C.resolve(path, env, flags)


def print_config(cfg, sources, out=None):
    out = out or sys.stdout
    out.write("# chatsrv serve: the effective settings (TOML; --config reads this back)\n")
    width = max(len(f"{n} = {C.show(n, getattr(cfg, n))}") for n in C.BY_NAME)
    for name in C.BY_NAME:
        line = f"{name} = {C.show(name, getattr(cfg, name))}"
        out.write(f"{line:<{width}}  # {sources[name]}\n")


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        cfg, sources = settings(args)
    except C.ConfigError as e:
        print(f"chatsrv {args.cmd}: {e}", file=sys.stderr)
        return 2
    if args.cmd == "serve":
        if args.print_config:
            print_config(cfg, sources)
            return 0
        from .server import serve

        return serve(cfg)
    if args.cmd == "adduser":
        return adduser(cfg.data, args.user)
    if args.cmd == "backup":
        from .datadir import NoDatabase
        from .store.lmdb import backup

        try:
            backup(cfg.data, args.dest)
        except (OSError, NoDatabase) as e:
            print(f"chatsrv backup: {e}", file=sys.stderr)
            return 1
        print(f"copied {cfg.data} to {args.dest}")
        return 0
    return 2


def adduser(data, user):
    import getpass

    from . import proto as P
    from .auth import Passwords
    from .datadir import NoDatabase, require_database
    from .store.lmdb import add_user

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
