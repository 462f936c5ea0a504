"""``troupe keys create|list|revoke``: the API keys of ``troupe serve`` and ``troupe mcp serve --http``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from troupe.runtime.access import ROLES, KeyStore, RateLimit


def _store(args: argparse.Namespace) -> KeyStore:
    return KeyStore(args.keys)


def _cmd_create(args: argparse.Namespace) -> int:
    limit = RateLimit(per_second=args.rate, burst=args.burst or max(1, int(args.rate * 6))) if args.rate else None
    text, record = _store(args).create(args.user, args.role, name=args.name or "", rate_limit=limit)
    if args.json:
        print(json.dumps({"key": text} | record.model_dump(mode="json", exclude={"hash"})))
    else:
        print(text)
        print(f"\nkey {record.id} for user {record.user} (role {record.role}) saved hashed in {_store(args).path}.\n"
              "This is the only time the key is shown: store it now (e.g. export TROUPE_API_KEY=...).", file=sys.stderr)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [r.model_dump(mode="json", exclude={"hash"}) for r in _store(args).records()]
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"no keys in {_store(args).path} (the server answers loopback only, as the local admin)", file=sys.stderr)
        return 0
    print(f"{'id':<17} {'user':<16} {'role':<7} {'name':<16} {'created':<20} revoked")
    for r in rows:
        print(f"{r['id']:<17} {r['user']:<16} {r['role']:<7} {r['name']:<16} {r['created_at'][:19]:<20} "
              f"{(r['revoked_at'] or '-')[:19]}")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    record = _store(args).revoke(args.key_id)
    print(f"key {record.id} of user {record.user} revoked at {record.revoked_at}; running servers refuse it now",
          file=sys.stderr)
    return 0


def add_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="API keys for troupe serve and troupe mcp serve --http (hashed at rest)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    def store_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--keys", help="the key store (default $TROUPE_HOME/keys.json, else ~/.troupe/keys.json)")
        p.add_argument("--json", action="store_true", help="print JSON")

    create = keys_sub.add_parser("create", help="make a key and print it (shown once; only its hash is kept)")
    create.add_argument("--user", required=True, help="the user the key acts as (owner of the sessions it creates)")
    create.add_argument("--role", required=True, choices=ROLES,
                        help="viewer: read own sessions; user: also create and drive them; admin: everything, every user's")
    create.add_argument("--name", help="a label (laptop, ci)")
    create.add_argument("--rate", type=float, help="this key's requests per second (default: the server's)")
    create.add_argument("--burst", type=int, help="requests at once before --rate applies (default 6 x rate)")
    store_option(create)
    create.set_defaults(func=_cmd_create)
    listing = keys_sub.add_parser("list", help="list keys (ids, users, roles; never secrets)")
    store_option(listing)
    listing.set_defaults(func=_cmd_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key (running servers refuse it from the next request)")
    revoke.add_argument("key_id", help="the key's id (troupe keys list)")
    store_option(revoke)
    revoke.set_defaults(func=_cmd_revoke)


__all__ = ["add_parser"]
