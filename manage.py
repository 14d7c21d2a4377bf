#!/usr/bin/env python
import os
import sys


def main() -> None:
    args = sys.argv[1:]
    if len(args) > 1 and args[0] == "parse_bounces" and not any(a.startswith("-") for a in args):
        # The bounce parser needs no Django: answer without setting it up (same output). Any
        # option (--help, --settings, ...) goes to Django's own command.
        from bounceparse.cli import main as parse_bounces

        raise SystemExit(parse_bounces(args[1:]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "msc_admin.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
