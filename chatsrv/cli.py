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
    us = sub.add_parser("user", help="accounts: add, list, passwd, disable, enable, delete",
                        description="Accounts. Safe while the server runs, except delete.")
    usub = us.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_ in (("add", "create an account (password from stdin, or asked on a terminal)"),
                        ("passwd", "set an account's password (from stdin, or asked on a terminal)"),
                        ("disable", "stop an account from logging in or authenticating (its data stays)"),
                        ("enable", "undo disable"),
                        ("delete", "delete an account: its tokens, devices, inbox, memberships and push "
                                   "subscriptions (its messages stay in their conversations, its name stays "
                                   "taken); needs the server stopped")):
        a = usub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".")
        _add_data(a)
        a.add_argument("user", help="user name")
        if name == "passwd":
            a.add_argument("--sign-out", action="store_true", help="also sign out every device of the account")
        if name == "delete":
            a.add_argument("--yes", action="store_true", help="do not ask to confirm")
    _add_data(usub.add_parser("list", help="every account with its status, devices and last seen"))
    au = sub.add_parser("adduser", help="the same as `user add`")
    _add_data(au)
    au.add_argument("user", help="user name (^[a-z0-9_]{3,32}$)")
    se = sub.add_parser("sessions", help="an account's devices, with last seen, read position and push")
    _add_data(se)
    se.add_argument("user")
    lo = sub.add_parser("logout", help="sign out one device of an account, or all of them (revokes their tokens "
                                       "and push subscriptions)")
    _add_data(lo)
    lo.add_argument("user")
    lo.add_argument("device", nargs="?", help="the device (see `chatsrv sessions USER`); all when omitted")
    _add_data(sub.add_parser("stats", help="users, conversations, messages, data size and map use"))
    _add_data(sub.add_parser("check", help="verify a data directory's invariants (seqs and inboxes without "
                                           "gaps, every inbox entry pointing at a message)"))
    bk = sub.add_parser("backup", help="copy a data directory (the server may be running) to DEST")
    _add_data(bk)
    bk.add_argument("dest", help="new directory to create with the copy")
    rs = sub.add_parser("restore", help="copy a backup into the data directory (the server must be stopped)")
    _add_data(rs)
    rs.add_argument("backup", help="a directory made by `chatsrv backup`")
    rs.add_argument("--force", action="store_true", help="move a database already in the data directory aside")
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
    name = f"chatsrv {args.cmd}" + (f" {args.action}" if args.cmd == "user" else "")
    try:
        return admin_command(args, cfg.data)
    except Exception as e:       # noqa: BLE001 - one line for what the operator can fix
        import lmdb

        from .admin import AdminError

        if not isinstance(e, (AdminError, OSError, lmdb.Error, ValueError)):
            raise
        print(f"{name}: {e}", file=sys.stderr)
        return 1


def read_password(prompt="password: "):
    """From the terminal (asked twice), or the first line of stdin."""
    import getpass

    from . import proto as P

    if sys.stdin.isatty():
        pw = getpass.getpass(prompt)
        if getpass.getpass("again: ") != pw:
            raise ValueError("the passwords differ")
    else:
        pw = sys.stdin.readline().rstrip("\n")
    P.password("password", pw)
    return pw


def _hash(pw):
    from .auth import Passwords

    p = Passwords()
    try:
        return p.hasher.hash(pw)
    finally:
        p.close()


def _running_note(data, what):
    from . import datadir

    if datadir.in_use(data):
        print(f"note: the server is running: {what}")


def admin_command(args, data):
    from . import admin
    from . import proto as P

    cmd = "user " + args.action if args.cmd == "user" else args.cmd
    if cmd in ("user add", "adduser"):
        P.user_name("user", args.user)
        pw_hash = _hash(read_password())
        store = admin.open_store(data)
        try:
            admin.user_add(store, args.user, pw_hash)
        finally:
            store.close()
        print(f"created {args.user}")
        return 0
    if cmd == "restore":
        aside = admin.restore(args.backup, data, args.force)
        if aside:
            print(f"moved the database that was in {data} to {aside}")
        store = admin.open_store(data)
        try:
            problems = admin.check(store)
        finally:
            store.close()
        print(f"restored {args.backup} to {data}" + ("; check: ok" if not problems else ""))
        for p in problems:
            print(f"check: {p}")
        return 0 if not problems else 1
    store = admin.open_store(data)
    try:
        if cmd == "user list":
            print(admin.user_list(store))
        elif cmd == "user passwd":
            admin.account(store, args.user)
            pw_hash = _hash(read_password("new password: "))
            out = admin.user_passwd(store, args.user, pw_hash, args.sign_out)
            print(f"password of {args.user} changed" + (f"; signed out {', '.join(out)}" if out else ""))
        elif cmd in ("user disable", "user enable"):
            admin.user_disable(store, args.user, cmd == "user disable")
            print(f"{args.user} {cmd.split()[1]}d")
            if cmd == "user disable":
                _running_note(data, f"{args.user} cannot log in or authenticate from now on; connections "
                                    "open now stay until they close (restart the server to end them now)")
        elif cmd == "user delete":
            if not args.yes:
                if not sys.stdin.isatty():
                    raise admin.AdminError("deleting cannot be undone: add --yes to confirm")
                if input(f"delete {args.user} and everything of theirs but their messages? "
                         f"type the name to confirm: ") != args.user:
                    raise admin.AdminError("not confirmed")
            out = admin.user_delete(store, data, args.user)
            print(f"deleted {args.user}: {len(out['devices'])} device(s) signed out, left {out['groups']} group(s) "
                  f"and {out['direct']} direct conversation(s); their messages stay, the name stays taken")
        elif cmd == "sessions":
            print(admin.sessions(store, args.user))
        elif cmd == "logout":
            out = admin.logout(store, args.user, args.device)
            print(f"signed out {', '.join(out) if out else 'no device'} of {args.user}")
            _running_note(data, "their tokens no longer work; connections open now stay until they close "
                                "(restart the server to end them now)")
        elif cmd == "stats":
            print(admin.stats(store, data))
        elif cmd == "check":
            problems = admin.check(store)
            for p in problems:
                print(p)
            print("ok" if not problems else f"{len(problems)} problem(s)")
            return 0 if not problems else 1
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
